"""/v1/audit-events: the workspace's own audit log, read-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.schemas import AuditEventOut, AuditFilters
from tenantry.auditlog.service import AuditEventService
from tenantry.auth.guards import requires_permission, tenant_principal
from tenantry.auth.handlers import get
from tenantry.core.schemas import Page
from tenantry.http.querying import Cursor, Limit
from tenantry.tenancy.pagination import PageRequest


def provide_audit_event_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> AuditEventService:
    return AuditEventService(db_session, tenant_principal(request), state.cursor_key)


Action = Annotated[str | None, Parameter(max_length=64, description="Only this action, e.g. token.created.")]
TargetType = Annotated[str | None, Parameter(max_length=64, description="Only events on this kind of target.")]
TargetId = Annotated[str | None, Parameter(max_length=64, description="Only events on this target.")]
TokenFingerprint = Annotated[
    str | None,
    Parameter(max_length=64, description="Only events made with this token: base64 of its SHA-256."),
]
ActorMemberId = Annotated[uuid.UUID | None, Parameter(description="Only events by this member.")]
# Taken as text and parsed strictly: Litestar converts query values leniently, so `until=0.5`
# was read as a Unix timestamp (1970) instead of being refused like any other non-RFC 3339 value.
Since = Annotated[
    str | None,
    Parameter(
        schema_extra={"format": "date-time"},
        max_length=64,
        description="RFC 3339; events at or after it (UTC if no offset).",
    ),
]
Until = Annotated[
    str | None,
    Parameter(
        schema_extra={"format": "date-time"},
        max_length=64,
        description="RFC 3339; events before it (UTC if no offset).",
    ),
]


def parse_instant(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 date-time (the offset may be left out), or a 400 naming the parameter."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, datetime, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            detail="The request is not valid.", extra=[{"key": name, "message": str(exc), "source": "query"}]
        ) from exc


read = requires_permission("audit_events", "read")


class AuditEventController(Controller):
    path = "/v1/audit-events"
    tags = ["Audit log"]
    dependencies = {"audit_event_service": Provide(provide_audit_event_service, sync_to_thread=False)}

    @get("/", operation_id="listAuditEvents", guards=[read])
    async def list_audit_events(
        self,
        audit_event_service: NamedDependency[AuditEventService],
        limit: Limit = 20,
        cursor: Cursor = None,
        action: Action = None,
        actor_member_id: ActorMemberId = None,
        target_type: TargetType = None,
        target_id: TargetId = None,
        token_fingerprint: TokenFingerprint = None,
        since: Since = None,
        until: Until = None,
    ) -> Page[AuditEventOut]:
        """The workspace's audit log, newest first, with keyset pagination and filters.

        Each event names its actor, the fingerprint of the token used (base64 of its SHA-256),
        the request id (the `Request-Id` response header of the call that caused it), the action
        and its target. A cursor is valid only with the filters that produced it.
        """
        filters = AuditFilters(
            action=action,
            actor_member_id=actor_member_id,
            target_type=target_type,
            target_id=target_id,
            token_fingerprint=token_fingerprint,
            since=parse_instant("since", since),
            until=parse_instant("until", until),
        )
        return await audit_event_service.list(PageRequest(limit=limit, cursor=cursor), filters)


__all__ = ["AuditEventController"]
