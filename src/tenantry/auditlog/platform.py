"""Reading the platform audit log: newest first, keyset-paginated, filtered by action and workspace."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.models import PlatformAuditEvent
from tenantry.auditlog.repository import PlatformAuditEventRepository
from tenantry.auditlog.schemas import PlatformAuditEventOut, PlatformAuditFilters
from tenantry.core.schemas import Page, to_wire
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork


def event_out(event: PlatformAuditEvent) -> PlatformAuditEventOut:
    return to_wire(event, PlatformAuditEventOut)


class AdminAuditService:
    def __init__(self, session: AsyncSession, cursor_key: bytes) -> None:
        self.uow = UnitOfWork(session)
        self.cursor_key = cursor_key
        self.events = PlatformAuditEventRepository(session)

    async def list(self, page: PageRequest, filters: PlatformAuditFilters) -> Page[PlatformAuditEventOut]:
        async with self.uow.transaction():
            # Ids are UUIDv7, so descending id is newest first.
            return await self.events.page(
                self.events.matching(filters),
                page=page,
                ordering=Ordering.by_id(PlatformAuditEvent.id, descending=True),
                key=self.cursor_key,
                filters=filters,
                to_wire=event_out,
            )
