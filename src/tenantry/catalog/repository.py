"""Tenant-scoped data access for products (the base in tenancy/repository.py adds the tenant filter)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, insert, select

from tenantry.catalog.models import Product
from tenantry.catalog.schemas import ProductCreate, ProductFilters, ProductOut
from tenantry.core.ids import uuid7
from tenantry.tenancy.repository import Lock, TenantRepository
from tenantry.tenancy.unit_of_work import NamedRow, TenantReads

# A get by id, built once: the same statement for every request, the tenant and the id its
# parameters (building and keying a SELECT per request was a tenth of a get's CPU). The tenant
# filter is the same one `scoped()` adds.
_BY_ID = {
    live_only: select(*Product.__table__.columns).where(
        Product.tenant_id == bindparam("tenant_id"),
        Product.id == bindparam("id"),
        *((Product.deleted_at.is_(None),) if live_only else ()),
    )
    for live_only in (True, False)
}
# A create: the INSERT of the client's fields, the tenant and the id, returning every column of the
# answer (the server sets created_at, updated_at): no second statement, no ORM flush.
_TABLE = cast("Table", Product.__table__)
_INSERTED = ("tenant_id", "id", *ProductCreate.__struct_fields__)
_INSERT = (
    insert(_TABLE)
    .values({name: bindparam(name) for name in _INSERTED})
    .returning(*(_TABLE.c[name] for name in ProductOut.__struct_fields__))
)


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

    async def read(self, reads: TenantReads, product_id: uuid.UUID, *, include_deleted: bool) -> NamedRow | None:
        """The product's columns, in a `tenant_reads` transaction (for an answer that only goes to the wire)."""
        return await reads.first(_BY_ID[not include_deleted], {"tenant_id": self.tenant_id, "id": product_id})

    async def insert(self, statements: TenantReads, data: ProductCreate) -> NamedRow:
        """Insert a product into this tenant in a `tenant_writes` transaction; its columns as stored."""
        values = {name: getattr(data, name) for name in ProductCreate.__struct_fields__}
        row = await statements.first(_INSERT, {**values, "tenant_id": self.tenant_id, "id": uuid7()})
        if row is None:  # RETURNING always returns the row it inserted
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return row

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
