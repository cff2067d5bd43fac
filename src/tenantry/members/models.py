from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base, TenantScoped, Timestamps


class Membership(TenantScoped, Timestamps, Base):
    """A user in a workspace: the role, the active flag and the per-workspace profile."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("role IN ('owner', 'admin', 'member', 'viewer')", name="role"),
        Index("ix_memberships_user_id", "user_id"),
    )
    # What resolve_token() reads: a change must reach every API process's token cache
    # (tenancy/auth_changes.py announces it in the transaction that makes it).
    __auth_columns__: ClassVar[frozenset[str]] = frozenset({"role", "is_active", "user_id"})

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Invitation(TenantScoped, Timestamps, Base):
    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_digest"),
        CheckConstraint("role IN ('owner', 'admin', 'member', 'viewer')", name="role"),
        CheckConstraint("status IN ('pending', 'accepted', 'revoked')", name="status"),
        Index("ix_invitations_token_digest", "token_digest"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # 'expired' is not stored: a pending invitation past expires_at reads as expired.
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    invited_by_member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    accepted_member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
