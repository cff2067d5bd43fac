-- Tenant table: the audit log. Append-only for the tenant role: INSERT and SELECT, never UPDATE
-- or DELETE. The platform role may also DELETE, which only a workspace purge does.
ALTER TABLE public.audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_events FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.audit_events;
CREATE POLICY tenant_isolation ON public.audit_events
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.audit_events FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT ON public.audit_events TO {{tenant_role}};
GRANT SELECT, INSERT, DELETE ON public.audit_events TO {{platform_role}};
