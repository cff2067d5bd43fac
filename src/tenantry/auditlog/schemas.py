"""Audit log wire types: read-only, since the log is append-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of events is narrowed to; every field is part of the cursor's binding."""

    action: str | None = None
    actor_member_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None
    token_fingerprint: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class PlatformAuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of platform events is narrowed to; every field is part of the cursor's binding."""

    action: str | None = None
    workspace_id: uuid.UUID | None = None


class AuditEventOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    occurred_at: datetime
    actor_type: str
    actor_member_id: uuid.UUID | None
    actor_admin_token_id: uuid.UUID | None
    token_fingerprint: str | None
    request_id: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


class PlatformAuditEventOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    occurred_at: datetime
    actor: str
    admin_token_id: uuid.UUID | None
    token_fingerprint: str | None
    request_id: str | None
    action: str
    workspace_id: uuid.UUID | None
    details: dict[str, Any]
