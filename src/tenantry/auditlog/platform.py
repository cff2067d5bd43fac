"""Reading the platform audit log: newest first, keyset-paginated, filtered by action and workspace."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.models import PlatformAuditEvent
from tenantry.auditlog.schemas import PlatformAuditEventOut
from tenantry.core.schemas import Page, to_wire
from tenantry.tenancy.pagination import decode_cursor, encode_cursor


def event_out(event: PlatformAuditEvent) -> PlatformAuditEventOut:
    return to_wire(event, PlatformAuditEventOut)


class AdminAuditService:
    def __init__(self, session: AsyncSession, cursor_key: bytes) -> None:
        self.session = session
        self.cursor_key = cursor_key

    async def list(
        self, *, limit: int, cursor: str | None, action: str | None, workspace_id: uuid.UUID | None
    ) -> Page[PlatformAuditEventOut]:
        # Ids are UUIDv7, so descending id is newest first, and a cursor is just the last id seen.
        binding = f"platform-audit-events:admin:{action or ''}:{workspace_id or ''}"
        before = decode_cursor(cursor, key=self.cursor_key, binding=binding) if cursor else None
        query = select(PlatformAuditEvent).order_by(PlatformAuditEvent.id.desc()).limit(limit + 1)
        if action is not None:
            query = query.where(PlatformAuditEvent.action == action)
        if workspace_id is not None:
            query = query.where(PlatformAuditEvent.workspace_id == workspace_id)
        if before is not None:
            query = query.where(PlatformAuditEvent.id < before)
        async with self.session.begin():
            rows = list((await self.session.execute(query)).scalars())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, key=self.cursor_key, binding=binding) if has_more else None
        return Page(data=[event_out(e) for e in rows], has_more=has_more, next_cursor=next_cursor)
