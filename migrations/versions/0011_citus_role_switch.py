"""On Citus, the role switch of `tenantry_set_context` is not replayed on the workers.

With `citus.propagate_set_commands = 'local'` (db/roles.py) Citus records every `SET LOCAL` of a
transaction and replays the whole list on each worker connection it opens later in it. It opens
that connection as the current role, so a replayed `SET LOCAL ROLE` is at best redundant, and it
breaks two things (docs/scale-out.md, "Definer functions and role switches"):

- inside a SECURITY DEFINER function (`member_emails()`) the connection is the owner's, and the
  owner may not `SET ROLE` to the tenant role the transaction switched to;
- a transaction that switches roles (invitation acceptance: platform, then tenant, then platform)
  replays every earlier switch on a connection opened as the later role, which may not make them.

So the role is switched with the propagation off, and the settings (tenant, user, timeout) are
still sent. The worker then runs every statement as the role the coordinator runs it as, exactly
as PostgreSQL does on one node: the tenant role under the tenant policies, a definer function as
its owner. On plain PostgreSQL the setting does not exist and nothing changes.

Revision ID: 0011_citus_role_switch
Revises: 0010_citus
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_citus_role_switch"
down_revision: str | None = "0010_citus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEAD = """
CREATE OR REPLACE FUNCTION public.tenantry_set_context(p_role text, p_tenant uuid, p_user uuid, p_timeout_ms integer)
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
"""

_TAIL = """
END
$$
"""

# The role switch as migration 0008 made it: replayed on the workers on Citus.
_SWITCH_0008 = """
    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', p_role);
"""

# Citus checks the setting when it sees the SET (not when it replays), and never replays a change of
# the setting itself: the switch between the two is recorded nowhere.
_SWITCH = """
    IF pg_catalog.current_setting('citus.propagate_set_commands', true) OPERATOR(pg_catalog.=) 'local' THEN
        SET LOCAL citus.propagate_set_commands = 'none';
        EXECUTE pg_catalog.format('SET LOCAL ROLE %I', p_role);
        SET LOCAL citus.propagate_set_commands = 'local';
    ELSE
        EXECUTE pg_catalog.format('SET LOCAL ROLE %I', p_role);
    END IF;
"""


def upgrade() -> None:
    op.execute(_HEAD + _SWITCH + _TAIL)


def downgrade() -> None:
    op.execute(_HEAD + _SWITCH_0008 + _TAIL)
