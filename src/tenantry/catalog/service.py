"""Product use cases. Each method is one unit of work: a failed commit is an error, never a 2xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.auditlog.recorder import record_event, record_tenant_event
from tenantry.auth.principal import Principal
from tenantry.catalog.errors import ProductHasOrders
from tenantry.catalog.models import Product
from tenantry.catalog.repository import ProductRepository
from tenantry.catalog.schemas import ProductCreate, ProductFilters, ProductOut, ProductUpdate
from tenantry.core.errors import Conflict, NotFound
from tenantry.core.schemas import Page, from_row, to_wire
from tenantry.http.etag import check_if_match
from tenantry.lookups.references import require_lookups
from tenantry.orders.repository import OrderRepository
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import COMMIT_OWNER_KEY, NamedRow, UnitOfWork, tenant_reads, tenant_writes

_SKU_TAKEN = Conflict("A live product with this SKU already exists in this workspace.")
# The allowlist of sort fields (`sort=name`, `sort=-price_cents`); all NOT NULL columns.
SORTABLE = {"created_at": Product.created_at, "name": Product.name, "price_cents": Product.price_cents}


def _out(product: Product) -> ProductOut:
    return to_wire(product, ProductOut)


def _out_row(row: NamedRow) -> ProductOut:
    return from_row(row, ProductOut)


class ProductService:
    def __init__(
        self,
        session: AsyncSession,
        principal: Principal,
        cursor_key: bytes,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.session = session
        # The factory of `session`, for the writes that need no ORM session (`create`).
        self.sessions = sessions
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.cursor_key = cursor_key
        self.products = ProductRepository(session, principal.tenant_id)
        self.orders = OrderRepository(session, principal.tenant_id)

    async def _locked_current(self, product_id: uuid.UUID, if_match: str | None) -> Product:
        """The row under lock, after checking the client's If-Match against what it would see now."""
        product = await self._get_or_404(product_id, lock=True)
        check_if_match(if_match, _out(product))
        return product

    async def _get_or_404(self, product_id: uuid.UUID, *, include_deleted: bool = False, lock: bool = False) -> Product:
        product = await self.products.find(product_id, include_deleted=include_deleted, lock="update" if lock else None)
        if product is None:
            raise NotFound("The resource was not found.")
        return product

    async def _require_category(self, category_id: uuid.UUID | None) -> None:
        """A category must be this workspace's lookup of kind product_category (else 422 naming the field)."""
        if category_id is not None:
            await require_lookups(
                self.session,
                self.principal.tenant_id,
                [category_id],
                kind="product_category",
                field="category_id",
                many=False,
            )

    async def create(self, data: ProductCreate) -> ProductOut:
        if (
            self.sessions is not None
            and data.category_id is None
            and self.session.info.get(COMMIT_OWNER_KEY) is None
            and not self.session.in_transaction()
        ):
            # The common create: two Core INSERTs in a transaction of their own, the product's
            # returning the answer (tenancy/unit_of_work.py, `tenant_writes`). A category takes the
            # session's path (its lookup check), and so does a request sent with an Idempotency-Key,
            # whose answer commits in the same transaction as its work.
            async with tenant_writes(self.sessions, unique=_SKU_TAKEN) as statements:
                row = await self.products.insert(statements, data)
                await record_tenant_event(statements, "product.created", "product", row["id"])
            return _out_row(row)
        async with self.uow.transaction(unique=_SKU_TAKEN):
            await self._require_category(data.category_id)
            # refresh=False: the INSERT returns the server-set columns (Product's eager_defaults).
            product = await self.products.add(Product(**msgspec.structs.asdict(data)), refresh=False)
            await record_event(self.session, "product.created", "product", product.id)
        return _out(product)

    async def update(self, product_id: uuid.UUID, data: ProductUpdate, *, if_match: str | None = None) -> ProductOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        async with self.uow.transaction(unique=_SKU_TAKEN):
            product = await self._locked_current(product_id, if_match)
            if changes.get("category_id") is not None and changes["category_id"] != product.category_id:
                await self._require_category(changes["category_id"])
            for field, value in changes.items():
                setattr(product, field, value)
            if changes:
                product.updated_at = datetime.now(UTC)
                await record_event(
                    self.session, "product.updated", "product", product_id, details={"fields": sorted(changes)}
                )
            product = await self.products.save(product, refresh=False)  # the UPDATE returns name_lower
        return _out(product)

    async def delete(self, product_id: uuid.UUID, *, if_match: str | None = None) -> None:
        """Soft delete: the row stays, hidden, and can be restored."""
        async with self.uow.transaction():
            product = await self._locked_current(product_id, if_match)
            product.deleted_at = datetime.now(UTC)
            product.updated_at = product.deleted_at
            await self.products.save(product, refresh=False)
            await record_event(self.session, "product.deleted", "product", product_id)

    async def restore(self, product_id: uuid.UUID) -> ProductOut:
        restored_sku_taken = Conflict("Another live product now uses this SKU; change it before restoring.")
        async with self.uow.transaction(unique=restored_sku_taken):
            product = await self._get_or_404(product_id, include_deleted=True, lock=True)
            if product.deleted_at is None:
                return _out(product)
            product.deleted_at = None
            product.updated_at = datetime.now(UTC)
            product = await self.products.save(product, refresh=False)
            await record_event(self.session, "product.restored", "product", product_id)
        return _out(product)

    async def purge(self, product_id: uuid.UUID) -> None:
        """Hard delete of a soft-deleted product that no order refers to (else 409)."""
        # The row lock makes a foreign-key violation unreachable in practice; the key stays the last word.
        referenced = Conflict("Orders refer to this product: it cannot be purged.")
        async with self.uow.transaction(foreign_key=referenced):
            # FOR UPDATE also waits for, then excludes, orders being placed for it (they share-lock it).
            product = await self._get_or_404(product_id, include_deleted=True, lock=True)
            if product.deleted_at is None:
                raise Conflict("Only a deleted product can be purged: delete it first.")
            order_count = await self.orders.count_for_product(product_id)
            if order_count:
                raise ProductHasOrders(order_count)
            await self.products.remove(product)
            await record_event(self.session, "product.purged", "product", product_id, details={"sku": product.sku})


class ProductReads:
    """The reads of products that only go to the wire: each its own `tenant_reads` transaction,
    with no ORM session opened for the request (tenancy/unit_of_work.py)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], principal: Principal, cursor_key: bytes) -> None:
        self.sessions = sessions
        self.cursor_key = cursor_key
        self.products = ProductRepository(None, principal.tenant_id)  # builds statements only

    async def list(self, page: PageRequest, filters: ProductFilters) -> Page[ProductOut]:
        ordering = Ordering.parse(page.sort or "created_at", SORTABLE, Product.id)
        # A read that only goes to the wire: its own transaction, no ORM session (tenancy/unit_of_work.py).
        async with tenant_reads(self.sessions) as reads:
            return await self.products.read_page(
                reads,
                lambda after: self.products.page_statement(filters, ordering, after),
                self.products.page_parameters(filters),
                page=page,
                ordering=ordering,
                key=self.cursor_key,
                filters=filters,
                to_wire=_out_row,
            )

    async def get(self, product_id: uuid.UUID, *, include_deleted: bool) -> ProductOut:
        async with tenant_reads(self.sessions) as reads:  # plain columns: it only goes to the wire
            row = await self.products.read(reads, product_id, include_deleted=include_deleted)
        if row is None:
            raise NotFound("The resource was not found.")
        return _out_row(row)
