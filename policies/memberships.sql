-- Tenant table: who belongs to the workspace, with which role and profile (display name).
-- The platform role is bound by the same tenant policy: an admin operation on a workspace's
-- data runs with that workspace set as the tenant, one workspace per transaction.
ALTER TABLE public.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memberships FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.memberships;
CREATE POLICY tenant_isolation ON public.memberships
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

-- The SECURITY DEFINER functions of 10_auth_functions.sql (owned by the owner role) read
-- memberships across tenants, read-only, before the tenant is known.
DROP POLICY IF EXISTS token_resolver_read ON public.memberships;
CREATE POLICY token_resolver_read ON public.memberships
    AS PERMISSIVE FOR SELECT TO {{owner_role}}
    USING (true);

REVOKE ALL ON public.memberships FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.memberships TO {{tenant_role}}, {{platform_role}};
