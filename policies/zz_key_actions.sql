-- The column grants of the key-action triggers of migration 0009 (tenantry_forget_member,
-- tenantry_forget_token): they clear a reference to a deleted member or token, as the keys' former
-- ON DELETE SET NULL (column) did, and run as the role that deletes, under its policies. Named to
-- be applied after the table files, whose REVOKE ALL would drop these grants.
-- The tenant role removes members; the platform role purges a workspace.
GRANT UPDATE (changed_by_member_id) ON public.order_status_history TO {{tenant_role}}, {{platform_role}};
GRANT UPDATE (invited_by_member_id, accepted_member_id) ON public.invitations TO {{platform_role}};
