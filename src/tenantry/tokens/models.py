from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Index, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.core.ids import uuid7
from tenantry.db.base import Base, TenantScoped, Timestamps


class PersonalAccessToken(TenantScoped, Timestamps, Base):
    __tablename__ = "personal_access_tokens"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "membership_id"], ["memberships.tenant_id", "memberships.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "token_digest"),
        # The resolver looks tokens up by digest before the tenant is known.
        Index("ix_personal_access_tokens_token_digest", "token_digest"),
        Index("ix_personal_access_tokens_tenant_id_membership_id", "tenant_id", "membership_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    membership_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    display_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    last_four: Mapped[str] = mapped_column(String(4), nullable=False)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class AdminToken(Timestamps, Base):
    """A platform admin token (type `tna_`): global, never bound to a workspace."""

    __tablename__ = "admin_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    token_digest: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    last_four: Mapped[str] = mapped_column(String(4), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
