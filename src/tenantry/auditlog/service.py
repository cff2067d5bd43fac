"""Reading the workspace's audit log. Writing is `audit.recorder`'s job; nothing here changes a row."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.models import AuditEvent
from tenantry.auditlog.schemas import AuditEventOut, AuditFilters
from tenantry.auth.principal import Principal
from tenantry.core.schemas import Page, to_wire
from tenantry.tenancy.pagination import decode_cursor, encode_cursor


def _out(event: AuditEvent) -> AuditEventOut:
    return to_wire(event, AuditEventOut)


def _aware(moment: datetime | None) -> datetime | None:
    """A timestamp without an offset is read as UTC, never as the server's local time."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class AuditEventService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes) -> None:
        self.session = session
        self.principal = principal
        self.cursor_key = cursor_key

    async def list(self, *, limit: int, cursor: str | None, filters: AuditFilters) -> Page[AuditEventOut]:
        """Newest first. `since` is inclusive and `until` exclusive, on `occurred_at`."""
        filters = msgspec.structs.replace(filters, since=_aware(filters.since), until=_aware(filters.until))
        binding = f"audit_events:{self.principal.tenant_id}:{msgspec.json.encode(filters).decode()}"
        after = decode_cursor(cursor, key=self.cursor_key, binding=binding) if cursor else None
        query = select(AuditEvent).where(AuditEvent.tenant_id == self.principal.tenant_id)
        if filters.action is not None:
            query = query.where(AuditEvent.action == filters.action)
        if filters.actor_member_id is not None:
            query = query.where(AuditEvent.actor_member_id == filters.actor_member_id)
        if filters.target_type is not None:
            query = query.where(AuditEvent.target_type == filters.target_type)
        if filters.target_id is not None:
            query = query.where(AuditEvent.target_id == filters.target_id)
        if filters.token_fingerprint is not None:
            query = query.where(AuditEvent.token_fingerprint == filters.token_fingerprint)
        if filters.since is not None:
            query = query.where(AuditEvent.occurred_at >= filters.since)
        if filters.until is not None:
            query = query.where(AuditEvent.occurred_at < filters.until)
        if after is not None:
            query = query.where(AuditEvent.id < after)
        # Ids are UUIDv7: descending id is newest first, and a stable keyset order.
        query = query.order_by(AuditEvent.id.desc()).limit(limit + 1)
        async with self.session.begin():
            rows = list((await self.session.execute(query)).scalars())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, key=self.cursor_key, binding=binding) if has_more else None
        return Page(data=[_out(e) for e in rows], has_more=has_more, next_cursor=next_cursor)
