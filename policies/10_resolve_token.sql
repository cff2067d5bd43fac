-- The token resolver: the one narrow lookup that runs before the tenant is known.
-- SECURITY DEFINER, owned by the owner role; it answers only "which token has this digest",
-- pins search_path and qualifies every name, and only the app login role may execute it.
-- The owner reads the token directory through the owner-only SELECT policies in
-- memberships.sql and personal_access_tokens.sql (FORCE RLS applies to the owner too).
CREATE OR REPLACE FUNCTION public.resolve_token(p_digest bytea)
RETURNS TABLE (
    token_id uuid,
    tenant_id uuid,
    user_id uuid,
    membership_id uuid,
    member_role text,
    permissions jsonb,
    expired boolean,
    revoked boolean,
    member_active boolean,
    workspace_status text
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.tenant_id, m.user_id, m.id, m.role::text, t.permissions,
           t.expires_at <= pg_catalog.now(), t.revoked_at IS NOT NULL, m.is_active, w.status::text
      FROM public.personal_access_tokens AS t
      JOIN public.memberships AS m ON m.tenant_id = t.tenant_id AND m.id = t.membership_id
      JOIN public.workspaces AS w ON w.id = t.tenant_id
     WHERE t.token_digest = p_digest
$$;
REVOKE ALL ON FUNCTION public.resolve_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.resolve_token(bytea) TO {{app_role}};
