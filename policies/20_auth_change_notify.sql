-- Tell every API process when what resolve_token() answers may have changed, so their caches of
-- verified tokens (src/tenantry/auth/cache.py) drop that workspace's entries at once. The payload
-- is the workspace id. NOTIFY is transactional: it goes out on COMMIT, never for a rollback.
-- Only the columns resolve_token() reads fire it: the once-a-minute last_used_at stamp does not.
-- Not SECURITY DEFINER: pg_notify needs no privilege, and a trigger function runs as whoever
-- made the change.
CREATE OR REPLACE FUNCTION public.notify_auth_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changed jsonb;
    coordinator boolean := true;
BEGIN
    -- On Citus the trigger fires on every node holding a placement of the row (docs/scale-out.md).
    -- Only the coordinator, where the API processes listen, notifies: a worker's NOTIFY reaches
    -- nobody, and makes PostgreSQL refuse to PREPARE the two-phase commit of every write to a
    -- reference table (workspaces). On plain PostgreSQL there is no such function: it notifies.
    IF pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL THEN
        EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
        IF NOT coordinator THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        changed := pg_catalog.to_jsonb(OLD);
    ELSE
        changed := pg_catalog.to_jsonb(NEW);
    END IF;
    PERFORM pg_catalog.pg_notify(
        'auth_changed',
        -- A workspace row is its own tenant. Not by TG_TABLE_NAME: on Citus the trigger fires on a
        -- shard, named workspaces_<shard id>.
        COALESCE(changed ->> 'tenant_id', changed ->> 'id')
    );
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.notify_auth_change() FROM PUBLIC;

DROP TRIGGER IF EXISTS auth_changed ON public.personal_access_tokens;
CREATE TRIGGER auth_changed
    AFTER UPDATE OF revoked_at, expires_at, permissions, replaced_by_id, membership_id, token_digest OR DELETE
    ON public.personal_access_tokens
    FOR EACH ROW EXECUTE FUNCTION public.notify_auth_change();

DROP TRIGGER IF EXISTS auth_changed ON public.memberships;
CREATE TRIGGER auth_changed
    AFTER UPDATE OF role, is_active, user_id OR DELETE
    ON public.memberships
    FOR EACH ROW EXECUTE FUNCTION public.notify_auth_change();

DROP TRIGGER IF EXISTS auth_changed ON public.workspaces;
CREATE TRIGGER auth_changed
    AFTER UPDATE OF status, max_token_lifetime_days OR DELETE
    ON public.workspaces
    FOR EACH ROW EXECUTE FUNCTION public.notify_auth_change();
