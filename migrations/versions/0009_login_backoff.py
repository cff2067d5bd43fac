"""Login back-off: every `auth_throttle` row says when it expires, so expired rows can be pruned.

The throttle no longer locks an account after a fixed number of failures; it makes each key wait,
longer with each failure (src/tenantry/users/throttle.py). A row means nothing once its count is
forgotten (or a familiar address prefix is no longer remembered): `expires_at` says when, and the
index lets each write delete a bounded batch of such rows. Existing rows expire a day after their
last counted attempt.

Revision ID: 0009_login_backoff
Revises: 0008_tenant_context
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_login_backoff"
down_revision: str | None = "0008_tenant_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "auth_throttle",
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.execute("UPDATE public.auth_throttle SET expires_at = window_start + interval '1 day'")
    op.create_index("ix_auth_throttle_expires_at", "auth_throttle", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_throttle_expires_at", table_name="auth_throttle")
    op.drop_column("auth_throttle", "expires_at")
