"""Tenant-scoped data access for products.

RLS is the wall; the explicit `tenant_id` filter here is what lets the planner go straight to one
tenant's rows (and what Citus routes on). Neither replaces the other.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.catalog.models import Product


class ProductRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, product_id: uuid.UUID, *, include_deleted: bool = False, lock: bool = False) -> Product | None:
        query = select(Product).where(Product.tenant_id == self.tenant_id, Product.id == product_id)
        if not include_deleted:
            query = query.where(Product.deleted_at.is_(None))
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_for_order(self, product_id: uuid.UUID) -> Product | None:
        """A live product, share-locked: its price cannot change, nor can it be deleted, until the caller commits."""
        query = (
            select(Product)
            .where(Product.tenant_id == self.tenant_id, Product.id == product_id, Product.deleted_at.is_(None))
            .with_for_update(read=True)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    def filtered(
        self, *, include_deleted: bool, name_prefix: str | None, category_id: uuid.UUID | None = None
    ) -> Select[Any]:
        """This tenant's products matching the list filters (ordering and paging are the caller's).

        Columns, not Product objects: a page goes straight to the wire, and plain rows skip the
        ORM's per-object bookkeeping (a measurable share of a list request)."""
        query = select(*Product.__table__.columns).where(Product.tenant_id == self.tenant_id)
        if not include_deleted:
            query = query.where(Product.deleted_at.is_(None))
        if category_id is not None:
            query = query.where(Product.category_id == category_id)
        if name_prefix:
            # Under RLS only a leakproof condition can drive an index, and LIKE or lower(column) are not:
            # starts_with() over the stored lower-cased name is, and becomes a range scan on
            # (tenant_id, name_lower text_pattern_ops). lower() here applies to the value, not a column.
            query = query.where(func.starts_with(Product.name_lower, func.lower(name_prefix)))
        return query

    async def add(self, product: Product) -> Product:
        product.tenant_id = self.tenant_id
        self.session.add(product)
        await self.session.flush()
        await self.session.refresh(product)
        return product

    async def save(self, product: Product) -> Product:
        await self.session.flush()
        await self.session.refresh(product)
        return product

    async def remove(self, product: Product) -> None:
        """Hard delete (the purge); the composite key from orders refuses it while orders exist."""
        await self.session.delete(product)
        await self.session.flush()
