"""Reading the workspace's audit log. Writing is `auditlog.recorder`'s job; nothing here changes a row."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.models import AuditEvent
from tenantry.auditlog.repository import AuditEventRepository
from tenantry.auditlog.schemas import AuditEventOut, AuditFilters
from tenantry.auth.principal import Principal
from tenantry.core.schemas import Page, to_wire
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork


def _out(event: AuditEvent) -> AuditEventOut:
    return to_wire(event, AuditEventOut)


def _aware(moment: datetime | None) -> datetime | None:
    """A timestamp without an offset is read as UTC, never as the server's local time."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class AuditEventService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes) -> None:
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.cursor_key = cursor_key
        self.events = AuditEventRepository(session, principal.tenant_id)

    async def list(self, page: PageRequest, filters: AuditFilters) -> Page[AuditEventOut]:
        """Newest first. `since` is inclusive and `until` exclusive, on `occurred_at`."""
        filters = msgspec.structs.replace(filters, since=_aware(filters.since), until=_aware(filters.until))
        async with self.uow.transaction():
            # Ids are UUIDv7: descending id is newest first, and a stable keyset order.
            return await self.events.page(
                self.events.matching(filters),
                page=page,
                ordering=Ordering.by_id(AuditEvent.id, descending=True),
                key=self.cursor_key,
                filters=filters,
                to_wire=_out,
            )
