"""`Idempotency-Key` for admin POSTs, scoped to the admin token that sent it.

1. `claim` inserts the key row in a transaction of its own and commits it BEFORE the work, so a
   concurrent duplicate finds it (and waits on the unique index until it is committed).
2. The work stores its status and body on that row inside the work's own transaction (`complete`),
   so a committed result and its stored answer never disagree.
3. If the work fails, `release` deletes the row, so the client can retry with the same key.

A repeat with another body is refused (422); a repeat while the first is still running is a 409;
otherwise the first answer is replayed. Keys live 24 hours. A row left in flight by a crashed
process is taken over after a few minutes, so a key can never be wedged for good.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.errors import Conflict, InvalidInput

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"

_FORGET_EXPIRED = text(
    "DELETE FROM public.admin_idempotency_keys WHERE admin_token_id = :token AND key = :key "
    "AND (created_at < now() - interval '24 hours' "
    "OR (response_status IS NULL AND created_at < now() - interval '5 minutes'))"
)
_INSERT = text(
    "INSERT INTO public.admin_idempotency_keys (admin_token_id, key, request_fingerprint) "
    "VALUES (:token, :key, :fingerprint) ON CONFLICT DO NOTHING RETURNING key"
)
_EXISTING = text(
    "SELECT request_fingerprint, response_status, response_body FROM public.admin_idempotency_keys "
    "WHERE admin_token_id = :token AND key = :key"
)
_COMPLETE = text(
    "UPDATE public.admin_idempotency_keys SET response_status = :status, response_body = CAST(:body AS jsonb) "
    "WHERE admin_token_id = :token AND key = :key"
)
_RELEASE = text("DELETE FROM public.admin_idempotency_keys WHERE admin_token_id = :token AND key = :key")


class IdempotencyInFlight(Conflict):
    type = "idempotency-in-flight"
    title = "Request in progress"


class IdempotencyMismatch(InvalidInput):
    type = "idempotency-key-reused"
    title = "Idempotency key reused"


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    admin_token_id: uuid.UUID
    key: str
    fingerprint: str

    @property
    def params(self) -> dict[str, Any]:
        return {"token": self.admin_token_id, "key": self.key}


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: dict[str, Any]


def request_fingerprint(operation: str, body: msgspec.Struct) -> str:
    """SHA-256 of the operation and the decoded body (keys sorted, defaults filled in)."""
    encoded = msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(operation.encode() + b"\x00" + encoded).hexdigest()


class IdempotencyStore:
    """The admin_idempotency_keys rows of one session (platform role)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, request: IdempotentRequest) -> Replay | None:
        """Claim the key (committed at once), or return the first answer to replay."""
        async with self.session.begin():
            await self.session.execute(_FORGET_EXPIRED, request.params)
            inserted = await self.session.execute(_INSERT, {**request.params, "fingerprint": request.fingerprint})
            if inserted.first() is not None:
                return None
            row = (await self.session.execute(_EXISTING, request.params)).one()
        if row.request_fingerprint != request.fingerprint:
            raise IdempotencyMismatch("This Idempotency-Key was already used with a different request; use a new key.")
        if row.response_status is None:
            raise IdempotencyInFlight("A request with this Idempotency-Key is still in progress; retry shortly.")
        return Replay(status=row.response_status, body=dict(row.response_body))

    async def complete(self, request: IdempotentRequest, status: int, body: msgspec.Struct) -> None:
        """Store the answer; call inside the work's own transaction."""
        await self.session.execute(
            _COMPLETE, {**request.params, "status": status, "body": msgspec.json.encode(body).decode()}
        )

    async def release(self, request: IdempotentRequest) -> None:
        """Forget the key after a failed attempt, so a retry with the same key runs the work again."""
        if self.session.in_transaction():
            await self.session.rollback()
        async with self.session.begin():
            await self.session.execute(_RELEASE, request.params)
