"""The `idempotency_keys` table: one row per (workspace, token, Idempotency-Key).

A row is claimed (inserted and committed) before the request runs, with `response_status` NULL;
it then either gets the 2xx answer stored on it, or is deleted so the client may retry with the
same key. Every statement runs through the tenant session, so the row's workspace comes from the
request's token like every other tenant row, and RLS keeps one workspace's keys from another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Uuid,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base

KEY_LIFETIME = text("interval '24 hours'")
# A row still running after this long belongs to a process that died: it may be taken over.
ABANDONED_AFTER = text("interval '5 minutes'")
# Each claim also removes up to this many expired keys of the workspace, so the table stays small
# without a sweeper process: every request adds at most one row and may remove several.
SWEEP_BATCH = 20


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
    # Identifies one claim, so a request whose abandoned row was taken over cannot touch the new one.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, server_default=text("gen_random_uuid()"))
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    # NULL while the first request is still running.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


_keys = cast("Table", IdempotencyKey.__table__)


@dataclass(frozen=True, slots=True)
class KeyScope:
    """Whose key this is: the workspace and the token, both taken from the verified principal."""

    tenant_id: uuid.UUID
    token_id: uuid.UUID
    key: str

    def matches(self) -> Any:
        return and_(_keys.c.tenant_id == self.tenant_id, _keys.c.token_id == self.token_id, _keys.c.key == self.key)


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key and runs; `claim_id` identifies its row."""

    scope: KeyScope
    claim_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ExistingKey:
    """Another request claimed the key first: still running (status None) or finished."""

    fingerprint: str
    status: int | None
    headers: dict[str, str]
    body: bytes


class IdempotencyStore:
    """Claims, completes and releases keys, each in a short committed transaction of its own."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def claim(self, scope: KeyScope, fingerprint: str) -> Claim | ExistingKey:
        """Insert the key row and commit it before the work, or return the row already there.

        Committing first is what makes a concurrent duplicate see the key: its INSERT waits on the
        unique index until this transaction ends, then finds the row.
        """
        for _ in range(3):
            async with self.session_factory() as session, session.begin():
                await self._forget_stale(session, scope)
                inserted = await session.execute(
                    insert(_keys)
                    .values(
                        tenant_id=scope.tenant_id,
                        token_id=scope.token_id,
                        key=scope.key,
                        request_fingerprint=fingerprint,
                        expires_at=func.now() + KEY_LIFETIME,
                    )
                    .on_conflict_do_nothing()
                    .returning(_keys.c.id)
                )
                claim_id = inserted.scalar_one_or_none()
                if claim_id is not None:
                    return Claim(scope, claim_id)
                row = (
                    await session.execute(
                        select(
                            _keys.c.request_fingerprint,
                            _keys.c.response_status,
                            _keys.c.response_headers,
                            _keys.c.response_body,
                        ).where(scope.matches())
                    )
                ).one_or_none()
            if row is not None:
                return ExistingKey(row[0], row[1], dict(row[2] or {}), bytes(row[3] or b""))
            # The holder released the key between our INSERT and SELECT: try again.
        raise RuntimeError("could not claim an idempotency key")

    async def complete(self, claim: Claim, status: int, headers: dict[str, str], body: bytes) -> None:
        """Store the answer to replay (2xx only; the caller decides)."""
        async with self.session_factory() as session, session.begin():
            await session.execute(
                update(_keys)
                .where(claim.scope.matches(), _keys.c.id == claim.claim_id)
                .values(response_status=status, response_headers=headers, response_body=body)
            )

    async def release(self, claim: Claim) -> None:
        """Forget the key after a failed attempt, so the client may retry with the same key."""
        async with self.session_factory() as session, session.begin():
            await session.execute(delete(_keys).where(claim.scope.matches(), _keys.c.id == claim.claim_id))

    @staticmethod
    async def _forget_stale(session: AsyncSession, scope: KeyScope) -> None:
        """Expired keys count as absent; a row left running by a crashed process may be taken over."""
        await session.execute(
            delete(_keys).where(
                scope.matches(),
                or_(
                    _keys.c.expires_at <= func.now(),
                    and_(
                        _keys.c.response_status.is_(None),
                        _keys.c.created_at < func.now() - ABANDONED_AFTER,
                    ),
                ),
            )
        )
        # A few of the workspace's other expired keys, skipping any a concurrent request holds.
        expired = (
            select(_keys.c.tenant_id, _keys.c.token_id, _keys.c.key)
            .where(_keys.c.tenant_id == scope.tenant_id, _keys.c.expires_at <= func.now())
            .order_by(_keys.c.expires_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
        await session.execute(
            delete(_keys).where(tuple_(_keys.c.tenant_id, _keys.c.token_id, _keys.c.key).in_(expired))
        )
