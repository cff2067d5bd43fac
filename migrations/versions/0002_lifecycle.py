"""Workspace lifecycle, admin tokens, invitations, token rotation, audit logs, login throttling.

Revision ID: 0002_lifecycle
Revises: 0001_core
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_lifecycle"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

uuid_default = sa.text("gen_random_uuid()")
now = sa.text("now()")
empty_object = sa.text("'{}'::jsonb")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=now)


def upgrade() -> None:
    # Workspaces: provisioning metadata, lifecycle timestamps, the token-lifetime cap.
    op.add_column("workspaces", sa.Column("external_id", sa.String(200), nullable=True))
    op.add_column("workspaces", sa.Column("metadata", postgresql.JSONB(), nullable=False, server_default=empty_object))
    op.add_column(
        "workspaces", sa.Column("max_token_lifetime_days", sa.Integer(), nullable=False, server_default="366")
    )
    op.add_column("workspaces", _ts("updated_at", nullable=False))
    op.add_column("workspaces", _ts("suspended_at"))
    op.add_column("workspaces", _ts("purge_after"))
    op.add_column("workspaces", _ts("purged_at"))
    op.add_column("workspaces", sa.Column("purge_report", postgresql.JSONB(), nullable=True))
    op.create_unique_constraint("uq_workspaces_external_id", "workspaces", ["external_id"])
    op.create_check_constraint(
        "ck_workspaces_max_token_lifetime_days", "workspaces", "max_token_lifetime_days BETWEEN 1 AND 366"
    )
    op.create_check_constraint(
        "ck_workspaces_purge_after", "workspaces", "status <> 'pending_deletion' OR purge_after IS NOT NULL"
    )

    op.add_column("users", _ts("updated_at", nullable=False))

    # Memberships carry the per-workspace profile that tenant data references.
    op.add_column("memberships", sa.Column("display_name", sa.String(200), nullable=False, server_default=""))
    op.add_column("memberships", _ts("updated_at", nullable=False))

    # Rotation: the old token points at its replacement and may live on for a grace period.
    op.add_column("personal_access_tokens", sa.Column("replaced_by_id", sa.Uuid(), nullable=True))
    op.add_column("personal_access_tokens", _ts("rotated_at"))
    # The token whose holder made this one: a leaked or stolen token's offspring go down with it.
    op.add_column("personal_access_tokens", sa.Column("created_by_token_id", sa.Uuid(), nullable=True))
    op.execute(
        "ALTER TABLE personal_access_tokens ADD CONSTRAINT "
        "fk_personal_access_tokens_tenant_id_created_by_token_id_personal_access_tokens "
        "FOREIGN KEY (tenant_id, created_by_token_id) REFERENCES personal_access_tokens (tenant_id, id) "
        "ON DELETE SET NULL (created_by_token_id)"
    )
    op.create_index(
        "ix_personal_access_tokens_tenant_id_created_by_token_id",
        "personal_access_tokens",
        ["tenant_id", "created_by_token_id"],
        postgresql_where=sa.text("created_by_token_id IS NOT NULL"),
    )
    # ON DELETE SET NULL (column): PostgreSQL 15+ can null one column of a composite key, so
    # tenant_id stays intact when the row it points at goes away.
    op.execute(
        "ALTER TABLE personal_access_tokens ADD CONSTRAINT "
        "fk_personal_access_tokens_tenant_id_replaced_by_id_personal_access_tokens "
        "FOREIGN KEY (tenant_id, replaced_by_id) REFERENCES personal_access_tokens (tenant_id, id) "
        "ON DELETE SET NULL (replaced_by_id)"
    )
    # Removing a member removes their tokens with them.
    op.drop_constraint(
        "fk_personal_access_tokens_tenant_id_membership_id_memberships", "personal_access_tokens", type_="foreignkey"
    )
    op.create_foreign_key(
        "fk_personal_access_tokens_tenant_id_membership_id_memberships",
        "personal_access_tokens",
        "memberships",
        ["tenant_id", "membership_id"],
        ["tenant_id", "id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_personal_access_tokens_tenant_id_replaced_by_id",
        "personal_access_tokens",
        ["tenant_id", "replaced_by_id"],
        postgresql_where=sa.text("replaced_by_id IS NOT NULL"),
    )

    op.create_table(
        "invitations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("invited_by_member_id", sa.Uuid(), nullable=True),
        sa.Column("accepted_member_id", sa.Uuid(), nullable=True),
        _ts("created_at", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _ts("accepted_at"),
        _ts("revoked_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_invitations"),
        sa.ForeignKeyConstraint(["tenant_id"], ["workspaces.id"], name="fk_invitations_tenant_id_workspaces"),
        sa.UniqueConstraint("tenant_id", "token_digest", name="uq_invitations_tenant_id_token_digest"),
        sa.CheckConstraint("role IN ('owner', 'admin', 'member', 'viewer')", name="ck_invitations_role"),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'revoked')", name="ck_invitations_status"),
    )
    for column in ("invited_by_member_id", "accepted_member_id"):
        op.execute(
            f"ALTER TABLE invitations ADD CONSTRAINT fk_invitations_tenant_id_{column}_memberships "
            f"FOREIGN KEY (tenant_id, {column}) REFERENCES memberships (tenant_id, id) ON DELETE SET NULL ({column})"
        )
    op.create_index("ix_invitations_token_digest", "invitations", ["token_digest"])
    op.create_index(
        "ix_invitations_tenant_id_invited_by_member_id", "invitations", ["tenant_id", "invited_by_member_id"]
    )
    op.create_index(
        "ix_invitations_tenant_id_accepted_member_id",
        "invitations",
        ["tenant_id", "accepted_member_id"],
        postgresql_where=sa.text("accepted_member_id IS NOT NULL"),
    )

    # Append-only, tenant-scoped audit log.
    op.create_table(
        "audit_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        _ts("occurred_at", nullable=False),
        sa.Column("actor_type", sa.String(20), nullable=False),
        sa.Column("actor_member_id", sa.Uuid(), nullable=True),
        sa.Column("actor_admin_token_id", sa.Uuid(), nullable=True),
        sa.Column("token_fingerprint", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False, server_default=empty_object),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_audit_events"),
        sa.ForeignKeyConstraint(["tenant_id"], ["workspaces.id"], name="fk_audit_events_tenant_id_workspaces"),
        sa.CheckConstraint(
            "actor_type IN ('member', 'admin', 'system', 'anonymous')", name="ck_audit_events_actor_type"
        ),
    )
    op.create_index("ix_audit_events_tenant_id_action_id", "audit_events", ["tenant_id", "action", "id"])

    # Platform side: admin tokens (their own type), their audit log, idempotency, login throttling.
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(), nullable=False),
        sa.Column("display_prefix", sa.String(16), nullable=False),
        sa.Column("last_four", sa.String(4), nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _ts("revoked_at"),
        _ts("last_used_at"),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
        sa.UniqueConstraint("token_digest", name="uq_admin_tokens_token_digest"),
    )
    op.create_table(
        "platform_audit_events",
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        _ts("occurred_at", nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("admin_token_id", sa.Uuid(), nullable=True),
        sa.Column("token_fingerprint", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False, server_default=empty_object),
        sa.PrimaryKeyConstraint("id", name="pk_platform_audit_events"),
        sa.ForeignKeyConstraint(
            ["admin_token_id"], ["admin_tokens.id"], name="fk_platform_audit_events_admin_token_id_admin_tokens"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name="fk_platform_audit_events_workspace_id_workspaces"
        ),
    )
    op.create_index("ix_platform_audit_events_admin_token_id", "platform_audit_events", ["admin_token_id"])
    op.create_index("ix_platform_audit_events_workspace_id", "platform_audit_events", ["workspace_id"])
    op.create_table(
        "admin_idempotency_keys",
        sa.Column("admin_token_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(), nullable=True),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("admin_token_id", "key", name="pk_admin_idempotency_keys"),
        sa.ForeignKeyConstraint(
            ["admin_token_id"], ["admin_tokens.id"], name="fk_admin_idempotency_keys_admin_token_id_admin_tokens"
        ),
    )
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_auth_throttle"),
    )


def downgrade() -> None:
    op.drop_table("auth_throttle")
    op.drop_table("admin_idempotency_keys")
    op.drop_table("platform_audit_events")
    op.drop_table("admin_tokens")
    op.drop_table("audit_events")
    op.drop_table("invitations")
    op.drop_index("ix_personal_access_tokens_tenant_id_replaced_by_id", "personal_access_tokens")
    op.drop_constraint(
        "fk_personal_access_tokens_tenant_id_replaced_by_id_personal_access_tokens", "personal_access_tokens"
    )
    op.drop_constraint(
        "fk_personal_access_tokens_tenant_id_membership_id_memberships", "personal_access_tokens", type_="foreignkey"
    )
    op.create_foreign_key(
        "fk_personal_access_tokens_tenant_id_membership_id_memberships",
        "personal_access_tokens",
        "memberships",
        ["tenant_id", "membership_id"],
        ["tenant_id", "id"],
    )
    op.drop_index("ix_personal_access_tokens_tenant_id_created_by_token_id", "personal_access_tokens")
    op.drop_constraint(
        "fk_personal_access_tokens_tenant_id_created_by_token_id_personal_access_tokens", "personal_access_tokens"
    )
    op.drop_column("personal_access_tokens", "created_by_token_id")
    op.drop_column("personal_access_tokens", "rotated_at")
    op.drop_column("personal_access_tokens", "replaced_by_id")
    op.drop_column("memberships", "updated_at")
    op.drop_column("memberships", "display_name")
    op.drop_column("users", "updated_at")
    for constraint in (
        "ck_workspaces_purge_after",
        "ck_workspaces_max_token_lifetime_days",
        "uq_workspaces_external_id",
    ):
        op.drop_constraint(constraint, "workspaces")
    for column in (
        "purge_report",
        "purged_at",
        "purge_after",
        "suspended_at",
        "updated_at",
        "max_token_lifetime_days",
        "metadata",
        "external_id",
    ):
        op.drop_column("workspaces", column)
