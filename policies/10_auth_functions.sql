-- The narrow SECURITY DEFINER functions that run before a tenant is known. Each pins
-- search_path, qualifies every name, and may be executed only by the app login role. They are
-- owned by the owner role, which reads the token directory and the tokens through the owner-only
-- policies in token_directory.sql, personal_access_tokens.sql, memberships.sql and invitations.sql
-- (FORCE RLS binds the owner).

-- The tenant context (migrations/versions/0008_tenant_context.py): only the app login role may
-- set it, so a transaction that has switched to the tenant or platform role cannot switch tenants
-- with it; every role a policy binds reads it (an inlined function needs EXECUTE to be inlined).
REVOKE ALL ON FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) TO {{app_role}};
REVOKE ALL ON FUNCTION public.tenantry_current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tenantry_current_tenant() TO {{tenant_role}}, {{platform_role}};

-- A compromised token's family: the token, its replacements (rotation) and every token minted
-- with any of them, transitively. Not SECURITY DEFINER: it runs with the rights of the definer
-- functions below that call it, and nobody else may execute it. PL/pgSQL, with the tenant named in
-- every part of the statement, so Citus plans it as one query on the workspace's shard (a SQL
-- function's parameter cannot be planned there: "could not create distributed plan").
DROP FUNCTION IF EXISTS public.revoke_token_family(uuid, uuid);
CREATE FUNCTION public.revoke_token_family(p_tenant uuid, p_token uuid)
RETURNS TABLE (tenant_id uuid, token_id uuid)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    WITH RECURSIVE family AS (
        SELECT t.tenant_id, t.id, t.replaced_by_id FROM public.personal_access_tokens AS t
         WHERE t.tenant_id = p_tenant AND t.id = p_token
        UNION
        SELECT t.tenant_id, t.id, t.replaced_by_id FROM public.personal_access_tokens AS t
          JOIN family AS f
            ON t.tenant_id = f.tenant_id AND (t.created_by_token_id = f.id OR t.id = f.replaced_by_id)
         WHERE t.tenant_id = p_tenant
    )
    UPDATE public.personal_access_tokens AS t SET revoked_at = pg_catalog.now()
      FROM family AS f
     WHERE t.tenant_id = p_tenant AND t.tenant_id = f.tenant_id AND t.id = f.id AND t.revoked_at IS NULL
    RETURNING t.tenant_id, t.id;
END
$$;
REVOKE ALL ON FUNCTION public.revoke_token_family(uuid, uuid) FROM PUBLIC;

-- Tenant tokens: the principal behind a digest. Stamps last_used_at at most once a minute, and
-- treats a rotated token presented after its grace period as stolen: its whole chain of
-- replacements is revoked (reuse detection, as GitLab does).
DROP FUNCTION IF EXISTS public.resolve_token(bytea);
CREATE FUNCTION public.resolve_token(p_digest bytea)
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
    workspace_status text,
    max_token_lifetime_days integer,
    expires_in_s double precision
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant uuid;
    tok public.personal_access_tokens%ROWTYPE;
    member public.memberships%ROWTYPE;
    workspace public.workspaces%ROWTYPE;
BEGIN
    -- The workspace first, from the directory (policies/token_directory.sql), then the token with
    -- its tenant: on Citus one coordinator-local read and one single-shard query, where the
    -- digest alone would query every shard (docs/scale-out.md). A digest the directory does not
    -- know is no token.
    SELECT d.workspace_id INTO tenant FROM public.token_directory AS d WHERE d.token_digest = p_digest;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO tok FROM public.personal_access_tokens AS t
     WHERE t.tenant_id = tenant AND t.token_digest = p_digest;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO member FROM public.memberships AS m WHERE m.tenant_id = tok.tenant_id AND m.id = tok.membership_id;
    SELECT * INTO workspace FROM public.workspaces AS w WHERE w.id = tok.tenant_id;
    IF tok.replaced_by_id IS NOT NULL AND tok.expires_at <= pg_catalog.now() THEN
        -- Each revocation goes to the workspace's audit log in this same statement's transaction
        -- (docs/08-token-guide.md, "The audit log"): both commit, or neither. The id is a uuid7
        -- (ms timestamp, version 7, random rest), like the app's, so the log keeps its order.
        INSERT INTO public.audit_events AS e
               (tenant_id, id, actor_type, action, target_type, target_id, details)
        SELECT f.tenant_id,
               pg_catalog.encode(pg_catalog.set_bit(pg_catalog.set_bit(
                   pg_catalog.substr(pg_catalog.int8send(pg_catalog.floor(
                       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint), 3)
                   || pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 7),
                   52, 1), 53, 1), 'hex')::uuid,
               'system', 'token.reuse_detected', 'token', f.token_id::text,
               pg_catalog.jsonb_build_object('presented_token_id', tok.id::text,
                                             'reason', 'rotated token used after its grace period')
          FROM public.revoke_token_family(tok.tenant_id, tok.id) AS f;
        -- Every API process drops the workspace's cached tokens when this commits
        -- (src/tenantry/auth/cache.py): sent here, on the coordinator on Citus, where they listen.
        PERFORM pg_catalog.pg_notify('auth_changed', tok.tenant_id::text);
    ELSIF tok.revoked_at IS NULL AND tok.expires_at > pg_catalog.now()
          AND member.is_active AND workspace.status = 'active'
          AND (tok.last_used_at IS NULL OR tok.last_used_at < pg_catalog.now() - interval '1 minute') THEN
        -- Only a use that is let through counts as a use: a suspended workspace's rows stay untouched.
        UPDATE public.personal_access_tokens AS t SET last_used_at = pg_catalog.now()
         WHERE t.tenant_id = tok.tenant_id AND t.id = tok.id;
    END IF;
    RETURN QUERY
    SELECT tok.id, tok.tenant_id, member.user_id, member.id, member.role::text, tok.permissions,
           tok.expires_at <= pg_catalog.now(), tok.revoked_at IS NOT NULL, member.is_active,
           workspace.status::text, workspace.max_token_lifetime_days,
           pg_catalog.date_part('epoch', tok.expires_at - pg_catalog.now());
END
$$;
REVOKE ALL ON FUNCTION public.resolve_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.resolve_token(bytea) TO {{app_role}};

-- Platform admin tokens: their own type and table; a tenant token never matches here.
DROP FUNCTION IF EXISTS public.resolve_admin_token(bytea);
CREATE FUNCTION public.resolve_admin_token(p_digest bytea)
RETURNS TABLE (token_id uuid, name text, valid boolean)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE public.admin_tokens AS a SET last_used_at = pg_catalog.now()
     WHERE a.token_digest = p_digest AND a.revoked_at IS NULL AND a.expires_at > pg_catalog.now()
       AND (a.last_used_at IS NULL OR a.last_used_at < pg_catalog.now() - interval '1 minute');
    RETURN QUERY
    SELECT a.id, a.name::text, (a.revoked_at IS NULL AND a.expires_at > pg_catalog.now())
      FROM public.admin_tokens AS a WHERE a.token_digest = p_digest;
END
$$;
REVOKE ALL ON FUNCTION public.resolve_admin_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.resolve_admin_token(bytea) TO {{app_role}};

-- Leak reports: anyone holding a token may have it revoked, with the tokens minted from it and
-- its replacements. Returns the tokens revoked, and logs each in its workspace's audit log in the
-- same transaction, as the reuse detection above does (on Citus the workspace's shards may not be
-- written by another role once this function's owner has changed them: so the events are written
-- here, not by the caller). Through the directory, like resolve_token(); PL/pgSQL, so Citus plans
-- the token query with the tenant as a value (one shard).
DROP FUNCTION IF EXISTS public.revoke_leaked_token(bytea);
DROP FUNCTION IF EXISTS public.revoke_leaked_token(bytea, text);
CREATE FUNCTION public.revoke_leaked_token(p_digest bytea, p_request_id text)
RETURNS TABLE (tenant_id uuid, token_id uuid)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant uuid;
    live uuid;
BEGIN
    SELECT d.workspace_id INTO tenant FROM public.token_directory AS d WHERE d.token_digest = p_digest;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT t.id INTO live FROM public.personal_access_tokens AS t
     WHERE t.tenant_id = tenant AND t.token_digest = p_digest
       AND t.revoked_at IS NULL AND t.expires_at > pg_catalog.now();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR tenant_id, token_id IN
        SELECT f.tenant_id, f.token_id FROM public.revoke_token_family(tenant, live) AS f ORDER BY f.token_id
    LOOP
        -- A uuid7 id (ms timestamp, version 7, random rest), as in resolve_token().
        INSERT INTO public.audit_events AS e
               (tenant_id, id, actor_type, action, target_type, target_id, details, request_id)
        VALUES (tenant,
                pg_catalog.encode(pg_catalog.set_bit(pg_catalog.set_bit(
                    pg_catalog.substr(pg_catalog.int8send(pg_catalog.floor(
                        pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint), 3)
                    || pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 7),
                    52, 1), 53, 1), 'hex')::uuid,
                'anonymous', 'token.leak_reported', 'token', token_id::text, '{}'::jsonb, p_request_id);
        RETURN NEXT;
    END LOOP;
    -- As in resolve_token(): the API processes' caches drop the workspace when this commits.
    PERFORM pg_catalog.pg_notify('auth_changed', tenant::text);
END
$$;
REVOKE ALL ON FUNCTION public.revoke_leaked_token(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.revoke_leaked_token(bytea, text) TO {{app_role}};

-- Leaked platform admin tokens are revoked the same way.
DROP FUNCTION IF EXISTS public.revoke_leaked_admin_token(bytea);
CREATE FUNCTION public.revoke_leaked_admin_token(p_digest bytea)
RETURNS TABLE (token_id uuid)
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE public.admin_tokens AS a SET revoked_at = pg_catalog.now()
     WHERE a.token_digest = p_digest AND a.revoked_at IS NULL AND a.expires_at > pg_catalog.now()
    RETURNING a.id
$$;
REVOKE ALL ON FUNCTION public.revoke_leaked_admin_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.revoke_leaked_admin_token(bytea) TO {{app_role}};

-- Invitations: which workspace an invitation token belongs to, before the tenant is known.
DROP FUNCTION IF EXISTS public.resolve_invitation(bytea);
CREATE FUNCTION public.resolve_invitation(p_digest bytea)
RETURNS TABLE (tenant_id uuid, invitation_id uuid)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL, not SQL: Citus cannot plan a distributed query over a SQL function's parameter
    -- ("could not create distributed plan"); PL/pgSQL passes it as a value (docs/scale-out.md).
    RETURN QUERY SELECT i.tenant_id, i.id FROM public.invitations AS i WHERE i.token_digest = p_digest;
END
$$;
REVOKE ALL ON FUNCTION public.resolve_invitation(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.resolve_invitation(bytea) TO {{app_role}};

-- Member emails: users are global, so a tenant cannot read them; this returns the emails of the
-- members of the tenant set on the current transaction, and nothing when none is set.
DROP FUNCTION IF EXISTS public.member_emails();
CREATE FUNCTION public.member_emails()
RETURNS TABLE (membership_id uuid, email text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.id, u.email::text
      FROM public.memberships AS m JOIN public.users AS u ON u.id = m.user_id
     WHERE m.tenant_id = public.tenantry_current_tenant()
$$;
REVOKE ALL ON FUNCTION public.member_emails() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.member_emails() TO {{tenant_role}}, {{platform_role}};
