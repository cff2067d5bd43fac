from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base, TenantScoped, Timestamps

LOOKUP_KINDS = ("product_category", "order_tag")


class Lookup(TenantScoped, Timestamps, Base):
    """One entry of a workspace's lookup list of some kind. The kind never changes after creation."""

    __tablename__ = "lookups"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "code"),
        CheckConstraint("kind IN ('product_category', 'order_tag')", name="kind"),
        CheckConstraint("color ~ '^#[0-9A-F]{6}$'", name="color"),
        CheckConstraint("position >= 0", name="position"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    color: Mapped[str | None] = mapped_column(String(7), nullable=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
