"""Idempotency keys for tenant POSTs, scoped to the workspace and the token.

The key leads with tenant_id (docs/security.md, contract rule 5); the token reference is composite and cascades, so
removing a token (or its member) removes its keys. The (tenant_id, expires_at) index serves the
sweep of expired keys that each claim performs.

Revision ID: 0004_idempotency
Revises: 0003_business
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_idempotency"
down_revision: str | None = "0003_business"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "token_id", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["tenant_id"], ["workspaces.id"], name="fk_idempotency_keys_tenant_id_workspaces"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "token_id"],
            ["personal_access_tokens.tenant_id", "personal_access_tokens.id"],
            name="fk_idempotency_keys_tenant_id_token_id_personal_access_tokens",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_idempotency_keys_tenant_id_expires_at", "idempotency_keys", ["tenant_id", "expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
