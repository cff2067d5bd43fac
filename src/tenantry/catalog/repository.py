"""Tenant-scoped data access for products (the base in tenancy/repository.py adds the tenant filter)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func

from tenantry.catalog.models import Product
from tenantry.catalog.schemas import ProductFilters
from tenantry.tenancy.repository import Lock, TenantRepository


class ProductRepository(TenantRepository[Product]):
    model = Product
    resource = "products"

    async def find(
        self, product_id: uuid.UUID, *, include_deleted: bool = False, lock: Lock | None = None
    ) -> Product | None:
        """The product, live ones only unless `include_deleted`.

        `lock="share"` is what an order takes: the price cannot change, nor can the product be
        deleted, until the order commits.
        """
        where = () if include_deleted else (Product.deleted_at.is_(None),)
        return await self.get(product_id, lock=lock, where=where)

    def filtered(
        self, *, include_deleted: bool, name_prefix: str | None, category_id: uuid.UUID | None = None
    ) -> Select[Any]:
        """This tenant's products matching the list filters (ordering and paging are the caller's).

        Columns, not Product objects: a page goes straight to the wire, and plain rows skip the
        ORM's per-object bookkeeping (a measurable share of a list request)."""
        query = self.columns()
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

    def matching(self, filters: ProductFilters) -> Select[Any]:
        return self.filtered(
            include_deleted=filters.include_deleted, name_prefix=filters.name_prefix, category_id=filters.category_id
        )
