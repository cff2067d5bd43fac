-- Tenant table: the tokens themselves (token_directory.sql maps their digests to workspaces). Only HMAC digests, a display prefix and the last 4
-- characters are stored; the clear token exists once, in the response that creates it.
ALTER TABLE public.personal_access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.personal_access_tokens FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.personal_access_tokens;
CREATE POLICY tenant_isolation ON public.personal_access_tokens
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

-- The resolver functions (owned by the owner role) look tokens up by digest before the tenant
-- is known, stamp last_used_at, and revoke on a leak report or a reused rotated token.
DROP POLICY IF EXISTS token_resolver_read ON public.personal_access_tokens;
CREATE POLICY token_resolver_read ON public.personal_access_tokens
    AS PERMISSIVE FOR SELECT TO {{owner_role}}
    USING (true);
DROP POLICY IF EXISTS token_resolver_update ON public.personal_access_tokens;
CREATE POLICY token_resolver_update ON public.personal_access_tokens
    AS PERMISSIVE FOR UPDATE TO {{owner_role}}
    USING (true) WITH CHECK (true);

REVOKE ALL ON public.personal_access_tokens FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.personal_access_tokens TO {{tenant_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.personal_access_tokens TO {{platform_role}};
