-- Workspace plans (migration 0008): global control plane, like workspaces.sql. The platform role
-- reads and writes them; nobody else touches the table.
REVOKE ALL ON public.workspace_plans FROM PUBLIC, {{tenant_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.workspace_plans TO {{platform_role}};

-- The plan of a token's workspace, read in the same statement as the token itself
-- (src/tenantry/auth/resolver.py): SELECT ... FROM resolve_token(d) LEFT JOIN LATERAL
-- workspace_plan(tenant_id). Only limits, no tenant data; executable by the app login role only.
DROP FUNCTION IF EXISTS public.workspace_plan(uuid);
CREATE FUNCTION public.workspace_plan(p_tenant uuid)
RETURNS TABLE (
    workspace_requests integer,
    workspace_window_s integer,
    workspace_concurrency integer,
    token_requests integer,
    token_window_s integer,
    token_concurrency integer
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.workspace_requests, p.workspace_window_s, p.workspace_concurrency,
           p.token_requests, p.token_window_s, p.token_concurrency
      FROM public.workspace_plans AS p
     WHERE p.workspace_id = p_tenant
$$;
REVOKE ALL ON FUNCTION public.workspace_plan(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.workspace_plan(uuid) TO {{app_role}};

-- A plan travels with the cached principals (src/tenantry/auth/cache.py): a change tells every
-- API process to forget the workspace's entries, on the channel of 20_auth_change_notify.sql.
CREATE OR REPLACE FUNCTION public.notify_plan_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    coordinator boolean := true;
BEGIN
    -- Only the coordinator notifies on Citus, as notify_auth_change() (20_auth_change_notify.sql).
    IF pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL THEN
        EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
        IF NOT coordinator THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_catalog.pg_notify('auth_changed', OLD.workspace_id::text);
    ELSE
        PERFORM pg_catalog.pg_notify('auth_changed', NEW.workspace_id::text);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION public.notify_plan_change() FROM PUBLIC;

DROP TRIGGER IF EXISTS plan_changed ON public.workspace_plans;
CREATE TRIGGER plan_changed
    AFTER INSERT OR UPDATE OR DELETE ON public.workspace_plans
    FOR EACH ROW EXECUTE FUNCTION public.notify_plan_change();
