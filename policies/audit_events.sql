-- Tenant table: the audit log. Append-only for the tenant role: INSERT and SELECT, never UPDATE
-- or DELETE. The platform role may also DELETE, which only a workspace purge does.
ALTER TABLE public.audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.audit_events FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.audit_events;
CREATE POLICY tenant_isolation ON public.audit_events
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

-- resolve_token() and revoke_leaked_token() (10_auth_functions.sql, owned by the owner role)
-- record the revocations of reuse detection and of leak reports, before any tenant is set: they
-- may add exactly those events, and read nothing.
DROP POLICY IF EXISTS token_resolver_reuse_events ON public.audit_events;
CREATE POLICY token_resolver_reuse_events ON public.audit_events
    AS PERMISSIVE FOR INSERT TO {{owner_role}}
    WITH CHECK (
        (action = 'token.reuse_detected' AND actor_type = 'system')
        OR (action = 'token.leak_reported' AND actor_type = 'anonymous')
    );

REVOKE ALL ON public.audit_events FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT ON public.audit_events TO {{tenant_role}};
GRANT SELECT, INSERT, DELETE ON public.audit_events TO {{platform_role}};
