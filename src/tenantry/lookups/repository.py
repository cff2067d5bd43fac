"""Tenant-scoped data access for lookup entries, and how many rows use each one.

RLS is the wall; the explicit `tenant_id` filter is what lets the planner go straight to one
tenant's rows. Neither replaces the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.catalog.models import Product
from tenantry.lookups.models import Lookup
from tenantry.orders.models import OrderTag

# What uses an entry of each kind, as (referencing column, its table's tenant column, plural noun).
USED_BY = {
    "product_category": (Product.category_id, Product.tenant_id, "products"),
    "order_tag": (OrderTag.lookup_id, OrderTag.tenant_id, "orders"),
}


class LookupRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, lookup_id: uuid.UUID, *, lock: bool = False) -> Lookup | None:
        query = select(Lookup).where(Lookup.tenant_id == self.tenant_id, Lookup.id == lookup_id)
        if lock:
            # FOR UPDATE waits for, and then excludes, every transaction that is adding a reference
            # (their foreign-key check holds FOR KEY SHARE): a usage count read after it is exact.
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def referenced(self, lookup_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Lookup]:
        """The entries among `lookup_ids`, share-locked so none is deleted before the caller commits."""
        ids = list(set(lookup_ids))
        if not ids:
            return {}
        query = (
            select(Lookup)
            .where(Lookup.tenant_id == self.tenant_id, Lookup.id.in_(ids))
            .with_for_update(key_share=True, read=True)
        )
        return {row.id: row for row in (await self.session.execute(query)).scalars()}

    def filtered(self, *, kind: str | None) -> Select[Lookup]:
        query = select(Lookup).where(Lookup.tenant_id == self.tenant_id)
        if kind is not None:
            query = query.where(Lookup.kind == kind)
        return query

    async def usage_counts(self, lookups: Iterable[Lookup]) -> dict[uuid.UUID, int]:
        """How many rows use each entry, one grouped query per kind (index-backed)."""
        by_kind: dict[str, list[uuid.UUID]] = {}
        for lookup in lookups:
            by_kind.setdefault(lookup.kind, []).append(lookup.id)
        counts: dict[uuid.UUID, int] = {}
        for kind, ids in by_kind.items():
            column, tenant_column, _ = USED_BY[kind]
            query = (
                select(column, func.count()).where(tenant_column == self.tenant_id, column.in_(ids)).group_by(column)
            )
            counts.update({row[0]: int(row[1]) for row in await self.session.execute(query) if row[0] is not None})
        return {lookup_id: counts.get(lookup_id, 0) for ids in by_kind.values() for lookup_id in ids}

    async def add(self, lookup: Lookup) -> Lookup:
        lookup.tenant_id = self.tenant_id
        self.session.add(lookup)
        await self.session.flush()
        await self.session.refresh(lookup)
        return lookup

    async def save(self, lookup: Lookup) -> Lookup:
        await self.session.flush()
        await self.session.refresh(lookup)
        return lookup

    async def remove(self, lookup: Lookup) -> None:
        await self.session.delete(lookup)
        await self.session.flush()
