-- Tenant table: the token directory. Only HMAC digests, a display prefix and the last 4
-- characters are stored; the clear token exists once, in the response that creates it.
ALTER TABLE public.personal_access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.personal_access_tokens FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.personal_access_tokens;
CREATE POLICY tenant_isolation ON public.personal_access_tokens
    AS PERMISSIVE FOR ALL TO {{tenant_role}}
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

-- The token resolver (owned by the owner role) looks tokens up by digest, read-only.
DROP POLICY IF EXISTS token_resolver_read ON public.personal_access_tokens;
CREATE POLICY token_resolver_read ON public.personal_access_tokens
    AS PERMISSIVE FOR SELECT TO {{owner_role}}
    USING (true);

REVOKE ALL ON public.personal_access_tokens FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.personal_access_tokens TO {{tenant_role}};
