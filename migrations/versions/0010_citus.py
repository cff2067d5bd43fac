"""Keys Citus accepts: the five `ON DELETE SET NULL (column)` keys become plain keys plus a trigger.

Citus refuses `ON DELETE SET NULL` (and SET DEFAULT) on a foreign key that holds the distribution
column, even with PostgreSQL 15's column list that spares it (docs/scale-out.md). Those five keys
(an invitation's inviter and acceptor, the member who changed an order's status, a token's
replacement and the token that minted it) become plain composite keys (NO ACTION), and an AFTER
DELETE trigger on the referenced table sets the referencing column to NULL, as the key's action
did, so behaviour is the same on every backend. The triggers are named to fire before the
foreign keys' own check triggers (`RI_ConstraintTrigger_...`: PostgreSQL fires a table's triggers
in name order, and "A" sorts before "R"), so the check finds the references already cleared.

They run as the deleting role (SECURITY INVOKER), under its policies: the column grants they need
are in policies/zz_key_actions.sql.

Revision ID: 0010_citus
Revises: 0009_login_backoff
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_citus"
down_revision: str | None = "0009_login_backoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint, column, referenced table)
KEYS = (
    ("invitations", "fk_invitations_tenant_id_invited_by_member_id_memberships", "invited_by_member_id", "memberships"),
    ("invitations", "fk_invitations_tenant_id_accepted_member_id_memberships", "accepted_member_id", "memberships"),
    (
        "order_status_history",
        "fk_order_status_history_tenant_id_changed_by_member_id_memberships",
        "changed_by_member_id",
        "memberships",
    ),
    (
        "personal_access_tokens",
        "fk_personal_access_tokens_tenant_id_created_by_token_id_personal_access_tokens",
        "created_by_token_id",
        "personal_access_tokens",
    ),
    (
        "personal_access_tokens",
        "fk_personal_access_tokens_tenant_id_replaced_by_id_personal_access_tokens",
        "replaced_by_id",
        "personal_access_tokens",
    ),
)

FORGET_MEMBER = """
CREATE FUNCTION public.tenantry_forget_member()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE public.invitations AS i SET invited_by_member_id = NULL
     WHERE i.tenant_id = OLD.tenant_id AND i.invited_by_member_id = OLD.id;
    UPDATE public.invitations AS i SET accepted_member_id = NULL
     WHERE i.tenant_id = OLD.tenant_id AND i.accepted_member_id = OLD.id;
    UPDATE public.order_status_history AS h SET changed_by_member_id = NULL
     WHERE h.tenant_id = OLD.tenant_id AND h.changed_by_member_id = OLD.id;
    RETURN NULL;
END
$$
"""

FORGET_PAT = """
CREATE FUNCTION public.tenantry_forget_token()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE public.personal_access_tokens AS t SET created_by_token_id = NULL
     WHERE t.tenant_id = OLD.tenant_id AND t.created_by_token_id = OLD.id;
    UPDATE public.personal_access_tokens AS t SET replaced_by_id = NULL
     WHERE t.tenant_id = OLD.tenant_id AND t.replaced_by_id = OLD.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    for table, name, column, referenced in KEYS:
        op.execute(f"ALTER TABLE public.{table} DROP CONSTRAINT {name}")
        op.execute(
            f"ALTER TABLE public.{table} ADD CONSTRAINT {name} "
            f"FOREIGN KEY (tenant_id, {column}) REFERENCES public.{referenced} (tenant_id, id)"
        )
    op.execute(FORGET_MEMBER)
    op.execute("REVOKE ALL ON FUNCTION public.tenantry_forget_member() FROM PUBLIC")
    op.execute(FORGET_PAT)
    op.execute("REVOKE ALL ON FUNCTION public.tenantry_forget_token() FROM PUBLIC")
    op.execute(
        'CREATE TRIGGER "A_forget_member" AFTER DELETE ON public.memberships '
        "FOR EACH ROW EXECUTE FUNCTION public.tenantry_forget_member()"
    )
    op.execute(
        'CREATE TRIGGER "A_forget_token" AFTER DELETE ON public.personal_access_tokens '
        "FOR EACH ROW EXECUTE FUNCTION public.tenantry_forget_token()"
    )


def downgrade() -> None:
    op.execute('DROP TRIGGER IF EXISTS "A_forget_token" ON public.personal_access_tokens')
    op.execute('DROP TRIGGER IF EXISTS "A_forget_member" ON public.memberships')
    op.execute("DROP FUNCTION IF EXISTS public.tenantry_forget_token()")
    op.execute("DROP FUNCTION IF EXISTS public.tenantry_forget_member()")
    for table, name, column, referenced in KEYS:
        op.execute(f"ALTER TABLE public.{table} DROP CONSTRAINT {name}")
        op.execute(
            f"ALTER TABLE public.{table} ADD CONSTRAINT {name} "
            f"FOREIGN KEY (tenant_id, {column}) REFERENCES public.{referenced} (tenant_id, id) "
            f"ON DELETE SET NULL ({column})"
        )
