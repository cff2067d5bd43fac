"""Workspace plans: a workspace's own request limits, overriding the deployment's defaults.

A global control-plane table (no tenant_id, like `workspaces`): one row per workspace that has a
plan, each limit NULL where the deployment's default applies. Platform admins set it through
`PATCH /admin/v1/workspaces/{id}/plan` and `tenantry admin workspace plan`; the API reads it with
the token (policies/workspace_plans.sql), so enforcing it costs no query of its own.

Revision ID: 0007_workspace_plans
Revises: 0006_idempotency_one
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_workspace_plans"
down_revision: str | None = "0006_idempotency_one"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, lowest, highest): the bounds of settings.LIMIT_BOUNDS, also kept by the database.
LIMITS = (
    ("workspace_requests", 1, 1_000_000),
    ("workspace_window_s", 1, 3600),
    ("workspace_concurrency", 1, 10_000),
    ("token_requests", 1, 1_000_000),
    ("token_window_s", 1, 3600),
    ("token_concurrency", 1, 10_000),
)


def upgrade() -> None:
    op.create_table(
        "workspace_plans",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=True) for name, _, _ in LIMITS),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("workspace_id", name="pk_workspace_plans"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name="fk_workspace_plans_workspace_id_workspaces"),
        *(
            sa.CheckConstraint(f"{name} BETWEEN {low} AND {high}", name=f"ck_workspace_plans_{name}")
            for name, low, high in LIMITS
        ),
    )


def downgrade() -> None:
    op.drop_table("workspace_plans")
    op.execute("DROP FUNCTION IF EXISTS public.workspace_plan(uuid)")
    op.execute("DROP FUNCTION IF EXISTS public.notify_plan_change()")
