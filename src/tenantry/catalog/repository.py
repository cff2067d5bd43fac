"""Tenant-scoped data access for products (the base in tenancy/repository.py adds the tenant filter)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Select, String, Table, bindparam, func, insert, select

from tenantry.catalog.models import Product
from tenantry.catalog.schemas import ProductCreate, ProductFilters, ProductOut
from tenantry.core.ids import uuid7
from tenantry.tenancy.pagination import Ordering, keyset_statement
from tenantry.tenancy.repository import Lock, TenantRepository
from tenantry.tenancy.unit_of_work import NamedRow, TenantReads

# A get by id, built once: the same statement for every request, the tenant and the id its
# parameters (building and keying a SELECT per request was a tenth of a get's CPU). The tenant
# filter is the same one `scoped()` adds.
BY_ID = {
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
INSERT = (
    insert(_TABLE)
    .values({name: bindparam(name) for name in _INSERTED})
    .returning(*(_TABLE.c[name] for name in ProductOut.__struct_fields__))
)


# Page statements by shape (`page_statement`): at most 2 x 2 x 2 x 6 orders x 2 of them.
_PAGES: dict[tuple[bool, bool, bool, str, bool], Select[Any]] = {}


def _narrowed(query: Select[Any], include_deleted: bool, name_prefix: Any, category_id: Any) -> Select[Any]:
    """`query` limited by the list filters; the values may be bind parameters (`page_statement`)."""
    if not include_deleted:
        query = query.where(Product.deleted_at.is_(None))
    if category_id is not None:
        query = query.where(Product.category_id == category_id)
    if name_prefix is not None:
        # Under RLS only a leakproof condition can drive an index, and LIKE or lower(column) are not:
        # starts_with() over the stored lower-cased name is, and becomes a range scan on
        # (tenant_id, name_lower text_pattern_ops). lower() here applies to the value, not a column.
        query = query.where(func.starts_with(Product.name_lower, func.lower(name_prefix)))
    return query


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
        return await reads.first(BY_ID[not include_deleted], {"tenant_id": self.tenant_id, "id": product_id})

    async def insert(self, statements: TenantReads, data: ProductCreate) -> NamedRow:
        """Insert a product into this tenant in a `tenant_writes` transaction; its columns as stored."""
        values = {name: getattr(data, name) for name in ProductCreate.__struct_fields__}
        row = await statements.first(INSERT, {**values, "tenant_id": self.tenant_id, "id": uuid7()})
        if row is None:  # RETURNING always returns the row it inserted
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return row

    def filtered(
        self, *, include_deleted: bool, name_prefix: str | None, category_id: uuid.UUID | None = None
    ) -> Select[Any]:
        """This tenant's products matching the list filters (ordering and paging are the caller's).

        Columns, not Product objects: a page goes straight to the wire, and plain rows skip the
        ORM's per-object bookkeeping (a measurable share of a list request)."""
        return _narrowed(self.columns(), include_deleted, name_prefix or None, category_id)

    def page_statement(self, filters: ProductFilters, ordering: Ordering, after: bool) -> Select[Any]:
        """The list's page statement for this shape of filters, order and cursor, built once: the
        tenant, the filter values, the cursor and the limit are its parameters (`page_parameters`).
        The same SELECT as `matching()` plus the page clauses; building and keying it per request
        was a tenth of a list's CPU."""
        shape = (
            filters.include_deleted,
            filters.name_prefix is not None,
            filters.category_id is not None,
            ordering.name,
            after,
        )
        statement = _PAGES.get(shape)
        if statement is None:
            query = select(*Product.__table__.columns).where(Product.tenant_id == bindparam("tenant_id"))
            query = _narrowed(
                query,
                filters.include_deleted,
                bindparam("name_prefix", type_=String) if filters.name_prefix is not None else None,
                bindparam("category_id", type_=Product.category_id.type) if filters.category_id is not None else None,
            )
            statement = _PAGES[shape] = keyset_statement(query, ordering, after=after)
        return statement

    def page_parameters(self, filters: ProductFilters) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name_prefix": filters.name_prefix, "category_id": filters.category_id}

    def matching(self, filters: ProductFilters) -> Select[Any]:
        return self.filtered(
            include_deleted=filters.include_deleted, name_prefix=filters.name_prefix, category_id=filters.category_id
        )
