"""Where Idempotency-Key answers are kept (docs/05-api-guide.md, Idempotency).

Two tables, one shape: `idempotency_keys` for tenant tokens (a tenant table: its rows belong to a
workspace, RLS applies, the key is per workspace and token) and `admin_idempotency_keys` for
platform admin tokens (global, per admin token). A row is only ever written together with the work
it answers for, in that work's transaction, so a committed row always holds a complete answer.
(Versions before this one committed a row without an answer before the work, and stored the answer
afterwards; such a row still reads as "in progress" for five minutes, then as absent, so a rolling
upgrade never runs a request twice.)

While a request with a key runs, its transaction holds a transaction-level advisory lock named
after the key (`lock()`): a concurrent duplicate that cannot take it is told the first is still in
progress. The lock ends with the transaction, whether it commits, rolls back, or its process dies
and PostgreSQL ends the connection: a crash never leaves a key stuck.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base
from tenantry.tenancy.repository import Repository, TenantRepository

KEY_LIFETIME = text("interval '24 hours'")
# How long an unanswered row left by an older version counts as still running.
ABANDONED_AFTER = text("interval '5 minutes'")
# Each claim also removes up to this many expired keys of the same owner, so the tables stay small
# without a sweeper process: every request adds at most one row and may remove several.
SWEEP_BATCH = 20
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:id)")


class IdempotencyKey(Base):
    """The first answer to a tenant POST sent with an Idempotency-Key, replayed to repeats for 24 hours."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # The key belongs to one token: removing the token (or its member) removes its keys.
        ForeignKeyConstraint(
            ["tenant_id", "token_id"],
            ["personal_access_tokens.tenant_id", "personal_access_tokens.id"],
            ondelete="CASCADE",
        ),
        Index("ix_idempotency_keys_tenant_id_expires_at", "tenant_id", "expires_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    token_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, server_default=text("gen_random_uuid()"))
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    # NULL only in rows claimed by versions before the answer committed with the work.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AdminIdempotencyKey(Base):
    """The first answer to an admin POST sent with an Idempotency-Key, replayed to repeats for 24 hours."""

    __tablename__ = "admin_idempotency_keys"

    admin_token_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("admin_tokens.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first request's fingerprint and the answer it got (status None: still running)."""

    fingerprint: str
    status: int | None
    headers: dict[str, str]
    body: bytes


class _Keys:
    """One Idempotency-Key of one owner (a tenant token or an admin token) in its table."""

    model: ClassVar[type[Any]]
    session: AsyncSession
    key: str

    def _this(self) -> list[ColumnElement[bool]]:
        """The conditions that pick this owner's row for this key."""
        raise NotImplementedError

    def _owner(self) -> dict[str, Any]:
        """The owner's columns, for the insert."""
        raise NotImplementedError

    def _owners_expired(self) -> list[ColumnElement[bool]]:
        """The owner's expired rows (the sweep)."""
        raise NotImplementedError

    def lock_id(self) -> int:
        """A 64-bit name for this key of this owner, for PostgreSQL's advisory locks."""
        name = "\x00".join([self.model.__tablename__, *(str(v) for v in self._owner().values()), self.key])
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    async def lock(self) -> bool:
        """Take the key for this transaction; False while another transaction holds it."""
        return bool((await self.session.execute(_TRY_LOCK, {"id": self.lock_id()})).scalar_one())

    async def forget_stale(self) -> None:
        """Expired keys and abandoned leftovers count as absent; sweep a few other expired ones."""
        table = self.model.__table__
        abandoned = and_(table.c.response_status.is_(None), table.c.created_at < func.now() - ABANDONED_AFTER)
        await self.session.execute(delete(table).where(*self._this(), or_(table.c.expires_at <= func.now(), abandoned)))
        # A few of the owner's other expired keys, skipping any a concurrent request holds.
        primary_key = list(table.primary_key.columns)
        expired = (
            select(*primary_key)
            .where(*self._owners_expired())
            .order_by(table.c.expires_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
        await self.session.execute(delete(table).where(tuple_(*primary_key).in_(expired)))

    async def find(self) -> StoredAnswer | None:
        table = self.model.__table__
        query = select(
            table.c.request_fingerprint, table.c.response_status, table.c.response_headers, table.c.response_body
        ).where(*self._this())
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return StoredAnswer(row[0], row[1], dict(row[2] or {}), bytes(row[3] or b""))

    async def store(self, fingerprint: str, status: int, headers: dict[str, str], body: bytes) -> None:
        """Write the answer in the work's own transaction: it commits, or vanishes, with the work."""
        await self.session.execute(
            insert(self.model.__table__).values(
                **self._owner(),
                key=self.key,
                request_fingerprint=fingerprint,
                response_status=status,
                response_headers=headers,
                response_body=body,
                expires_at=func.now() + KEY_LIFETIME,
            )
        )


class TenantKeys(_Keys, TenantRepository[IdempotencyKey]):
    """A key of a tenant token, in the workspace's own rows (the tenant filter is the base's)."""

    model = IdempotencyKey
    resource = "idempotency-keys"

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID, token_id: uuid.UUID, key: str) -> None:
        super().__init__(session, tenant_id)
        self.token_id = token_id
        self.key = key

    def _this(self) -> list[ColumnElement[bool]]:
        return [self.tenant_filter(), IdempotencyKey.token_id == self.token_id, IdempotencyKey.key == self.key]

    def _owner(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "token_id": self.token_id}

    def _owners_expired(self) -> list[ColumnElement[bool]]:
        # The whole workspace's expired keys, whichever token sent them.
        return [self.tenant_filter(), IdempotencyKey.expires_at <= func.now()]


class AdminKeys(_Keys, Repository[AdminIdempotencyKey]):
    """A key of a platform admin token."""

    model = AdminIdempotencyKey
    resource = "admin-idempotency-keys"

    def __init__(self, session: AsyncSession, admin_token_id: uuid.UUID, key: str) -> None:
        super().__init__(session)
        self.admin_token_id = admin_token_id
        self.key = key

    def _this(self) -> list[ColumnElement[bool]]:
        return [AdminIdempotencyKey.admin_token_id == self.admin_token_id, AdminIdempotencyKey.key == self.key]

    def _owner(self) -> dict[str, Any]:
        return {"admin_token_id": self.admin_token_id}

    def _owners_expired(self) -> list[ColumnElement[bool]]:
        return [
            AdminIdempotencyKey.admin_token_id == self.admin_token_id,
            AdminIdempotencyKey.expires_at <= func.now(),
        ]
