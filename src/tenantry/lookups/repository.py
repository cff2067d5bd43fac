"""Tenant-scoped data access for lookup entries, and how many rows use each one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, select

from tenantry.catalog.models import Product
from tenantry.lookups.models import Lookup
from tenantry.orders.models import OrderTag
from tenantry.tenancy.repository import TenantRepository

# What uses an entry of each kind, as (referencing column, its model, plural noun).
USED_BY: dict[str, tuple[Any, Any, str]] = {
    "product_category": (Product.category_id, Product, "products"),
    "order_tag": (OrderTag.lookup_id, OrderTag, "orders"),
}


class LookupRepository(TenantRepository[Lookup]):
    model = Lookup
    resource = "lookups"

    async def referenced(self, lookup_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Lookup]:
        """The entries among `lookup_ids`, share-locked so none is deleted before the caller commits."""
        ids = list(set(lookup_ids))
        if not ids:
            return {}
        query = self.select().where(Lookup.id.in_(ids)).with_for_update(key_share=True, read=True)
        return {row.id: row for row in await self.scalars(query)}

    def filtered(self, *, kind: str | None) -> Select[Any]:
        query = self.select()
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
            column, source, _ = USED_BY[kind]
            query = self.scoped(select(column, func.count()), source).where(column.in_(ids)).group_by(column)
            counts.update({row[0]: int(row[1]) for row in await self.session.execute(query) if row[0] is not None})
        return {lookup_id: counts.get(lookup_id, 0) for ids in by_kind.values() for lookup_id in ids}
