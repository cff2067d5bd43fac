"""Lookup use cases. Each method is one unit of work: a failed commit is an error, never a 2xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.principal import Principal
from tenantry.core.errors import Conflict, InvalidInput, NotFound
from tenantry.core.schemas import Page, to_wire
from tenantry.http.etag import check_if_match
from tenantry.lookups.errors import LookupInUse
from tenantry.lookups.models import Lookup
from tenantry.lookups.repository import USED_BY, LookupRepository
from tenantry.lookups.schemas import LookupCreate, LookupFields, LookupFilters, LookupOut, LookupUpdate
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork

_CODE_TAKEN = Conflict("An entry of this kind with this code already exists in this workspace.")
# The row lock makes this unreachable in practice; the key stays the last word.
_IN_USE = Conflict("This entry is in use; remove it from what uses it before deleting it.")
# The allowlist of sort fields (`sort=position`, `sort=-name`); all NOT NULL columns.
SORTABLE = {
    "position": Lookup.position,
    "code": Lookup.code,
    "name": Lookup.name,
    "created_at": Lookup.created_at,
}


def lookup_out(lookup: Lookup, usage_count: int) -> LookupOut:
    return LookupOut(**msgspec.structs.asdict(to_wire(lookup, LookupFields)), usage_count=usage_count)


def _upper(color: Any) -> Any:
    return color.upper() if isinstance(color, str) else color


class LookupService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.cursor_key = cursor_key
        self.lookups = LookupRepository(session, principal.tenant_id)

    async def _get_or_404(self, lookup_id: uuid.UUID, *, lock: bool = False) -> Lookup:
        lookup = await self.lookups.get(lookup_id, lock="update" if lock else None)
        if lookup is None:
            raise NotFound("The resource was not found.")
        return lookup

    async def _current(self, lookup: Lookup) -> LookupOut:
        counts = await self.lookups.usage_counts([lookup])
        return lookup_out(lookup, counts[lookup.id])

    async def create(self, data: LookupCreate) -> LookupOut:
        fields = msgspec.structs.asdict(data)
        fields["color"] = _upper(fields["color"])
        async with self.uow.transaction(unique=_CODE_TAKEN):
            lookup = await self.lookups.add(Lookup(**fields))
            await record_event(self.session, "lookup.created", "lookup", lookup.id, details={"kind": lookup.kind})
        return lookup_out(lookup, 0)

    async def list(self, page: PageRequest, filters: LookupFilters) -> Page[LookupOut]:
        async def with_usage(rows: list[Lookup]) -> list[LookupOut]:
            counts = await self.lookups.usage_counts(rows)
            return [lookup_out(row, counts[row.id]) for row in rows]

        async with self.uow.transaction():
            return await self.lookups.page(
                self.lookups.filtered(kind=filters.kind),
                page=page,
                ordering=Ordering.parse(page.sort or "position", SORTABLE, Lookup.id),
                key=self.cursor_key,
                filters=filters,
                enrich=with_usage,
            )

    async def get(self, lookup_id: uuid.UUID) -> LookupOut:
        async with self.uow.transaction():
            return await self._current(await self._get_or_404(lookup_id))

    async def update(self, lookup_id: uuid.UUID, data: LookupUpdate, *, if_match: str | None = None) -> LookupOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if "color" in changes:
            changes["color"] = _upper(changes["color"])
        async with self.uow.transaction(unique=_CODE_TAKEN):
            lookup = await self._get_or_404(lookup_id, lock=True)
            check_if_match(if_match, await self._current(lookup))
            if changes.pop("kind", lookup.kind) != lookup.kind:
                # What uses an entry depends on its kind: a category cannot become a tag.
                raise InvalidInput(
                    "The kind of an entry cannot be changed; create a new entry instead.",
                    errors=[{"field": "kind", "message": "cannot be changed"}],
                )
            changes = {k: v for k, v in changes.items() if getattr(lookup, k) != v}
            for field, value in changes.items():
                setattr(lookup, field, value)
            if changes:
                lookup.updated_at = datetime.now(UTC)
                await record_event(
                    self.session, "lookup.updated", "lookup", lookup_id, details={"fields": sorted(changes)}
                )
            lookup = await self.lookups.save(lookup)
            current = await self._current(lookup)
        return current

    async def delete(self, lookup_id: uuid.UUID, *, if_match: str | None = None) -> None:
        """Hard delete, refused with 409 and the count while any row uses the entry."""
        async with self.uow.transaction(foreign_key=_IN_USE):
            lookup = await self._get_or_404(lookup_id, lock=True)
            current = await self._current(lookup)
            check_if_match(if_match, current)
            if current.usage_count:
                raise LookupInUse(current.usage_count, USED_BY[lookup.kind][2])
            await self.lookups.remove(lookup)
            await record_event(
                self.session,
                "lookup.deleted",
                "lookup",
                lookup_id,
                details={"kind": lookup.kind, "code": lookup.code},
            )
