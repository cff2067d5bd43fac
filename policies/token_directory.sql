-- Global table: the token directory (migrations/versions/0012_token_directory.py), which workspace
-- a token digest belongs to. resolve_token() and revoke_leaked_token() (owned by the owner role)
-- read it by digest before the tenant is known. A tenant, or the platform role acting for one, adds
-- its own workspace's entry with each token it creates, and reads none: not another workspace's
-- digests, not its own. The platform role deletes a purged workspace's entries.
ALTER TABLE public.token_directory ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.token_directory FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS token_directory_insert ON public.token_directory;
CREATE POLICY token_directory_insert ON public.token_directory
    AS PERMISSIVE FOR INSERT TO {{tenant_role}}, {{platform_role}}
    WITH CHECK (workspace_id = public.tenantry_current_tenant());

-- The purge's DELETE ... WHERE workspace_id = reads that column: SELECT policies apply to it too.
DROP POLICY IF EXISTS token_directory_purge_read ON public.token_directory;
CREATE POLICY token_directory_purge_read ON public.token_directory
    AS PERMISSIVE FOR SELECT TO {{platform_role}}
    USING (workspace_id = public.tenantry_current_tenant());
DROP POLICY IF EXISTS token_directory_purge ON public.token_directory;
CREATE POLICY token_directory_purge ON public.token_directory
    AS PERMISSIVE FOR DELETE TO {{platform_role}}
    USING (workspace_id = public.tenantry_current_tenant());

DROP POLICY IF EXISTS token_resolver_read ON public.token_directory;
CREATE POLICY token_resolver_read ON public.token_directory
    AS PERMISSIVE FOR SELECT TO {{owner_role}}
    USING (true);

REVOKE ALL ON public.token_directory FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT INSERT ON public.token_directory TO {{tenant_role}}, {{platform_role}};
-- The column the purge filters on, never the digests.
GRANT SELECT (workspace_id), DELETE ON public.token_directory TO {{platform_role}};
