-- Tenant table: the first answer to a POST sent with an Idempotency-Key, per workspace and token.
-- The tenant role claims, completes, forgets and sweeps keys; the platform role reads them and
-- deletes them when purging a workspace (with that workspace set).
ALTER TABLE public.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.idempotency_keys FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.idempotency_keys;
CREATE POLICY tenant_isolation ON public.idempotency_keys
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.idempotency_keys FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.idempotency_keys TO {{tenant_role}};
GRANT SELECT, DELETE ON public.idempotency_keys TO {{platform_role}};
