-- Tenant table: invitations by email. The invitation token is stored only as its HMAC digest.
ALTER TABLE public.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invitations FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.invitations;
CREATE POLICY tenant_isolation ON public.invitations
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

-- resolve_invitation() (owned by the owner role) finds an invitation by digest before the
-- tenant is known.
DROP POLICY IF EXISTS invitation_resolver_read ON public.invitations;
CREATE POLICY invitation_resolver_read ON public.invitations
    AS PERMISSIVE FOR SELECT TO {{owner_role}}
    USING (true);

REVOKE ALL ON public.invitations FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.invitations TO {{tenant_role}};
GRANT SELECT, DELETE ON public.invitations TO {{platform_role}};
