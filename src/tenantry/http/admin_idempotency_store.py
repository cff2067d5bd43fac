"""The admin idempotency keys table (see http/admin_idempotency.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base, Timestamps


class AdminIdempotencyKey(Timestamps, Base):
    """The first response to an admin POST with an Idempotency-Key, replayed for repeats."""

    __tablename__ = "admin_idempotency_keys"

    admin_token_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("admin_tokens.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    # NULL while the first request is still running.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
