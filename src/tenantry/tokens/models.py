from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

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

    # What resolve_token() reads: a change to one of these must reach every API process's token
    # cache (tenancy/auth_changes.py announces it in the transaction that makes it).
    __auth_columns__: ClassVar[frozenset[str]] = frozenset(
        {"revoked_at", "expires_at", "permissions", "replaced_by_id", "membership_id", "token_digest"}
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


class TokenDirectoryEntry(Base):
    """Which workspace a token digest belongs to, read before the tenant is known.

    A global table, not a tenant one (no tenant_id column): resolve_token() looks the digest up
    here, then reads the token with its tenant, so on Citus the lookup is one coordinator-local
    read plus one single-shard query instead of a query on every shard (docs/scale-out.md). Written
    with the token, in the same transaction (TokenRepository.add); tenants may insert their own
    workspace's entries and read none. The purge deletes a workspace's entries. No foreign key to
    workspaces: migrations/versions/0012_token_directory.py says why.
    """

    __tablename__ = "token_directory"
    __table_args__ = (Index("ix_token_directory_workspace_id", "workspace_id"),)

    token_digest: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)


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
