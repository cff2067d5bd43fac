"""The workspace: global control-plane row, one per tenant (its id is the tenant_id everywhere)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.core.ids import uuid7
from tenantry.db.base import Base, Timestamps

WORKSPACE_STATUSES = ("active", "suspended", "pending_deletion", "purged")


class Workspace(Timestamps, Base):
    __tablename__ = "workspaces"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'pending_deletion', 'purged')", name="status"),
        CheckConstraint("slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'", name="slug"),
        CheckConstraint("max_token_lifetime_days BETWEEN 1 AND 366", name="max_token_lifetime_days"),
        CheckConstraint("status <> 'pending_deletion' OR purge_after IS NOT NULL", name="purge_after"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    slug: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False, server_default="{}")
    max_token_lifetime_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="366")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purge_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purge_report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class WorkspacePlan(Base):
    """A workspace's own limits (migration 0008); a NULL limit is the deployment's default."""

    __tablename__ = "workspace_plans"
    __table_args__ = tuple(
        CheckConstraint(f"{name} BETWEEN {low} AND {high}", name=name)
        for name, (low, high) in (
            ("workspace_requests", (1, 1_000_000)),
            ("workspace_window_s", (1, 3600)),
            ("workspace_concurrency", (1, 10_000)),
            ("token_requests", (1, 1_000_000)),
            ("token_window_s", (1, 3600)),
            ("token_concurrency", (1, 10_000)),
        )
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    workspace_requests: Mapped[int | None] = mapped_column(Integer)
    workspace_window_s: Mapped[int | None] = mapped_column(Integer)
    workspace_concurrency: Mapped[int | None] = mapped_column(Integer)
    token_requests: Mapped[int | None] = mapped_column(Integer)
    token_window_s: Mapped[int | None] = mapped_column(Integer)
    token_concurrency: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
