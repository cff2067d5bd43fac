-- Tenant table: the product catalog. Deletion is soft (deleted_at) and can be undone; the tenant
-- role's DELETE serves only the purge of a product that is already soft-deleted and has no orders
-- (the composite foreign key from orders refuses otherwise). The platform role deletes only when
-- purging a workspace (with that workspace set).
ALTER TABLE public.products ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.products FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.products;
CREATE POLICY tenant_isolation ON public.products
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.products FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.products TO {{tenant_role}};
GRANT SELECT, DELETE ON public.products TO {{platform_role}};
