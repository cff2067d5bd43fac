-- Global control plane: no tenant_id, no tenant access at all. The platform role runs it.
REVOKE ALL ON public.workspaces FROM PUBLIC, {{tenant_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.workspaces TO {{platform_role}};
