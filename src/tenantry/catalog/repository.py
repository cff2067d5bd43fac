"""Tenant-scoped data access for products.

RLS is the wall; the explicit `tenant_id` filter here is what lets the planner go straight to one
tenant's rows (and what Citus routes on). Neither replaces the other.
"""

from __future__ import annotations

import uuid

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

    def filtered(self, *, include_deleted: bool, name_prefix: str | None) -> Select[tuple[Product]]:
        """This tenant's products matching the list filters (ordering and paging are the caller's)."""
        query = select(Product).where(Product.tenant_id == self.tenant_id)
        if not include_deleted:
            query = query.where(Product.deleted_at.is_(None))
        if name_prefix:
            # lower(name) LIKE 'prefix%' uses the (tenant_id, lower(name) text_pattern_ops) index.
            pattern = name_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(func.lower(Product.name).like(pattern, escape="\\"))
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
