-- Tenant table: lookup lists (product categories, order tags). Entries are hard-deleted, and only
-- when nothing uses them (the composite foreign keys from products and order_tags refuse
-- otherwise), so the tenant role has DELETE; the platform role deletes only when purging a
-- workspace (with that workspace set).
ALTER TABLE public.lookups ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.lookups FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.lookups;
CREATE POLICY tenant_isolation ON public.lookups
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.lookups FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.lookups TO {{tenant_role}};
GRANT SELECT, DELETE ON public.lookups TO {{platform_role}};
