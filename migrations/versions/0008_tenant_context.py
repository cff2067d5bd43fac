"""One tenant mechanism for PostgreSQL and Citus: a function that sets it, a function that reads it.

`tenantry_set_context(role, tenant, user, timeout_ms)` is the only way the per-transaction context
is set (docs/03-architecture.md): it runs `SET LOCAL` for each setting and then `SET LOCAL ROLE`.
`set_config(..., true)`, used before, is not sent to Citus workers, and mixing it with `SET LOCAL`
in one transaction lets the coordinator and the workers see different tenants; `SET LOCAL` is sent
to the workers when the login role has `citus.propagate_set_commands = 'local'` (db/roles.py).
It is SECURITY INVOKER, so the role switch is checked against the caller's memberships as before;
only the app login role may execute it (policies/10_auth_functions.sql grants it), so once a
transaction has switched to the tenant or platform role it cannot switch tenants with it, and the
function itself refuses to run as any role but the session's login role.

`tenantry_current_tenant()` is what every policy compares the tenant column with: Citus refuses a
subquery in a policy on a distributed table, and a STABLE SQL function with no SET clause is
inlined by the planner into the bare expression (docs/performance.md says what that costs).

Revision ID: 0008_tenant_context
Revises: 0007_workspace_plans
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_tenant_context"
down_revision: str | None = "0007_workspace_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# No SET clause and not SECURITY DEFINER, or the planner would not inline it; every name in it is
# qualified, and nobody but the owner may create objects (policies/00_schema.sql).
CURRENT_TENANT = """
CREATE FUNCTION public.tenantry_current_tenant()
RETURNS uuid
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$ SELECT NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::pg_catalog.uuid $$
"""

# The role is switched last: the settings before it are set by the login role, and the caller's
# membership in `p_role` is checked by SET ROLE itself, as for a plain SET LOCAL ROLE. No tenant
# (or no user) is the empty string, which the policies read as NULL: they then match nothing.
SET_CONTEXT = """
CREATE FUNCTION public.tenantry_set_context(p_role text, p_tenant uuid, p_user uuid, p_timeout_ms integer)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.<>) session_user THEN
        RAISE EXCEPTION 'tenantry_set_context runs as the login role only, not as %', current_user
            USING ERRCODE = '42501';
    END IF;
    IF p_role IS NULL OR p_timeout_ms IS NULL OR p_timeout_ms OPERATOR(pg_catalog.<) 0 THEN
        RAISE EXCEPTION 'tenantry_set_context needs a role and a statement timeout'
            USING ERRCODE = '22023';
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.tenant_id = %L', COALESCE(p_tenant::text, ''));
    EXECUTE pg_catalog.format('SET LOCAL app.user_id = %L', COALESCE(p_user::text, ''));
    EXECUTE pg_catalog.format('SET LOCAL statement_timeout = %s', p_timeout_ms);
    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', p_role);
END
$$
"""


def upgrade() -> None:
    op.execute(CURRENT_TENANT)
    op.execute("REVOKE ALL ON FUNCTION public.tenantry_current_tenant() FROM PUBLIC")
    op.execute(SET_CONTEXT)
    op.execute("REVOKE ALL ON FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) FROM PUBLIC")


def downgrade() -> None:
    # The policies of this revision depend on tenantry_current_tenant(): dropping it drops them,
    # which leaves every tenant table with FORCE RLS and no policy (nothing visible) until the
    # previous revision's policy files are applied again.
    op.execute("DROP FUNCTION IF EXISTS public.tenantry_set_context(text, uuid, uuid, integer)")
    op.execute("DROP FUNCTION IF EXISTS public.tenantry_current_tenant() CASCADE")
