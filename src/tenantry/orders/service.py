"""Order use cases. Each method is one unit of work: a failed commit is an error, never a 2xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.principal import Principal
from tenantry.catalog.repository import ProductRepository
from tenantry.core.errors import InvalidInput, NotFound
from tenantry.core.schemas import Page, to_wire
from tenantry.http.etag import check_if_match
from tenantry.lookups.references import require_lookups
from tenantry.orders.models import Order
from tenantry.orders.repository import OrderRepository
from tenantry.orders.schemas import (
    OrderCreate,
    OrderFields,
    OrderFilters,
    OrderOut,
    OrderTagOut,
    OrderUpdate,
    StatusChangeOut,
)
from tenantry.orders.status import INITIAL_STATUS, check_transition
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork

NOT_FOUND = "The resource was not found."
# The allowlist of sort fields (`sort=-amount_cents`); all NOT NULL columns.
SORTABLE = {"created_at": Order.created_at, "amount_cents": Order.amount_cents}


def order_out(order: Order, tags: list[OrderTagOut]) -> OrderOut:
    return OrderOut(**msgspec.structs.asdict(to_wire(order, OrderFields)), tags=tags)


def _unique(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


class OrderService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.tenant_id = principal.tenant_id
        self.cursor_key = cursor_key
        self.orders = OrderRepository(session, principal.tenant_id)
        self.products = ProductRepository(session, principal.tenant_id)

    async def _get_or_404(self, order_id: uuid.UUID, *, lock: bool = False) -> Order:
        order = await self.orders.get(order_id, lock="update" if lock else None)
        if order is None:
            raise NotFound(NOT_FOUND)
        return order

    async def _current(self, order: Order) -> OrderOut:
        return order_out(order, (await self.orders.tags_of([order.id]))[order.id])

    async def _locked_current(self, order_id: uuid.UUID, if_match: str | None) -> Order:
        """The row under lock, after checking the client's If-Match against what it would see now."""
        order = await self._get_or_404(order_id, lock=True)
        check_if_match(if_match, await self._current(order))
        return order

    async def _require_tags(self, tag_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        await require_lookups(self.session, self.tenant_id, tag_ids, kind="order_tag", field="tag_ids", many=True)
        return _unique(tag_ids)

    async def create(self, data: OrderCreate) -> OrderOut:
        async with self.uow.transaction():
            # Share-locked until commit: the price read here is the price at the moment of the order.
            product = await self.products.find(data.product_id, lock="share")
            if product is None:
                # A deleted product, another workspace's, or none at all: one answer.
                raise InvalidInput(
                    "The body names an unknown product.",
                    errors=[{"field": "product_id", "message": "unknown product"}],
                )
            tag_ids = await self._require_tags(data.tag_ids)
            order = await self.orders.add(
                Order(
                    product_id=product.id,
                    customer_email=data.customer_email,
                    customer_name=data.customer_name,
                    quantity=data.quantity,
                    amount_cents=product.price_cents * data.quantity,
                    currency=product.currency,
                    status=INITIAL_STATUS,
                )
            )
            await self.orders.add_status_change(order.id, None, INITIAL_STATUS, self.principal.membership_id)
            if tag_ids:
                await self.orders.replace_tags(order.id, tag_ids)
            await record_event(
                self.session,
                "order.created",
                "order",
                order.id,
                details={
                    "product_id": str(product.id),
                    "quantity": order.quantity,
                    "amount_cents": order.amount_cents,
                    "currency": order.currency,
                    "tag_ids": [str(t) for t in tag_ids],
                },
            )
            return await self._current(order)

    async def list(self, page: PageRequest, filters: OrderFilters) -> Page[OrderOut]:
        if filters.customer_email is not None:
            filters = msgspec.structs.replace(filters, customer_email=filters.customer_email.lower())

        async def with_tags(rows: list[Order]) -> list[OrderOut]:
            tags = await self.orders.tags_of(row.id for row in rows)
            return [order_out(row, tags[row.id]) for row in rows]

        async with self.uow.transaction():
            return await self.orders.page(
                self.orders.matching(filters),
                page=page,
                ordering=Ordering.parse(page.sort or "created_at", SORTABLE, Order.id),
                key=self.cursor_key,
                filters=filters,
                enrich=with_tags,
            )

    async def get(self, order_id: uuid.UUID) -> OrderOut:
        async with self.uow.transaction():
            return await self._current(await self._get_or_404(order_id))

    async def history(self, order_id: uuid.UUID) -> Page[StatusChangeOut]:
        """The whole history in one page: the status machine allows at most four entries."""
        async with self.uow.transaction():
            await self._get_or_404(order_id)
            return Page(data=await self.orders.history(order_id), has_more=False)

    async def transition(self, order_id: uuid.UUID, to_status: str, *, if_match: str | None = None) -> OrderOut:
        """Move the order to `to_status`; an illegal move is a 409 and changes nothing."""
        async with self.uow.transaction():
            order = await self._locked_current(order_id, if_match)
            from_status = order.status
            check_transition(from_status, to_status)
            order.status = to_status
            order.updated_at = datetime.now(UTC)
            order = await self.orders.save(order)
            await self.orders.add_status_change(order.id, from_status, to_status, self.principal.membership_id)
            await record_event(
                self.session, "order.status_changed", "order", order.id, details={"from": from_status, "to": to_status}
            )
            return await self._current(order)

    async def update(self, order_id: uuid.UUID, data: OrderUpdate, *, if_match: str | None = None) -> OrderOut:
        async with self.uow.transaction():
            order = await self._locked_current(order_id, if_match)
            changed: list[str] = []
            details: dict[str, object] = {}
            if data.customer_name is not msgspec.UNSET and data.customer_name != order.customer_name:
                order.customer_name = data.customer_name
                changed.append("customer_name")
            if data.tag_ids is not msgspec.UNSET:
                added, removed = await self.orders.replace_tags(order.id, await self._require_tags(data.tag_ids))
                if added or removed:
                    changed.append("tag_ids")
                    details["tags_added"] = sorted(str(t) for t in added)
                    details["tags_removed"] = sorted(str(t) for t in removed)
            if changed:
                order.updated_at = datetime.now(UTC)
                order = await self.orders.save(order)
                await record_event(
                    self.session, "order.updated", "order", order.id, details={"fields": changed, **details}
                )
            return await self._current(order)
