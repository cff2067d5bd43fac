"""Tenant-scoped data access for orders, their status history and their tags."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, func, insert, select

from tenantry.core.ids import uuid7
from tenantry.core.schemas import to_wire
from tenantry.lookups.models import Lookup
from tenantry.orders.models import Order, OrderStatusHistory, OrderTag
from tenantry.orders.schemas import OrderFilters, OrderTagOut, StatusChangeOut
from tenantry.tenancy.repository import TenantRepository


class OrderRepository(TenantRepository[Order]):
    model = Order
    resource = "orders"

    def filtered(self, *, status: str | None, product_id: uuid.UUID | None, customer_email: str | None) -> Select[Any]:
        query = self.select()
        if status is not None:
            query = query.where(Order.status == status)
        if product_id is not None:
            query = query.where(Order.product_id == product_id)
        if customer_email is not None:
            # Case-insensitive, on the (tenant_id, customer_email_lower) index: lower() applies to the
            # value, never to the column (a function over a column cannot drive an index under RLS).
            query = query.where(Order.customer_email_lower == func.lower(customer_email))
        return query

    def matching(self, filters: OrderFilters) -> Select[Any]:
        return self.filtered(
            status=filters.status, product_id=filters.product_id, customer_email=filters.customer_email
        )

    async def count_for_product(self, product_id: uuid.UUID) -> int:
        query = self.scoped(select(func.count())).where(Order.product_id == product_id)
        return int((await self.session.execute(query)).scalar_one())

    # -- status history --------------------------------------------------------------------------

    async def add_status_change(
        self, order_id: uuid.UUID, from_status: str | None, to_status: str, member_id: uuid.UUID | None
    ) -> None:
        self.session.add(
            OrderStatusHistory(
                tenant_id=self.tenant_id,
                id=uuid7(),
                order_id=order_id,
                from_status=from_status,
                to_status=to_status,
                changed_by_member_id=member_id,
            )
        )
        await self.session.flush()

    async def history(self, order_id: uuid.UUID) -> list[StatusChangeOut]:
        """Oldest first. Ids are time-ordered (UUIDv7), so they break ties within one timestamp."""
        query = (
            self.scoped(select(OrderStatusHistory), OrderStatusHistory)
            .where(OrderStatusHistory.order_id == order_id)
            .order_by(OrderStatusHistory.changed_at, OrderStatusHistory.id)
        )
        return [to_wire(row, StatusChangeOut) for row in await self.scalars(query)]

    # -- tags ------------------------------------------------------------------------------------

    async def tags_of(self, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[OrderTagOut]]:
        """Each order's tags, by the tags' position then code; one query for a whole page."""
        ids = list(order_ids)
        tags: dict[uuid.UUID, list[OrderTagOut]] = {order_id: [] for order_id in ids}
        if not ids:
            return tags
        query = (
            self.scoped(select(OrderTag.order_id, Lookup.id, Lookup.code, Lookup.name, Lookup.color), OrderTag)
            .join(Lookup, (Lookup.tenant_id == OrderTag.tenant_id) & (Lookup.id == OrderTag.lookup_id))
            .where(OrderTag.order_id.in_(ids))
            .order_by(OrderTag.order_id, Lookup.position, Lookup.code, Lookup.id)
        )
        for order_id, lookup_id, code, name, color in await self.session.execute(query):
            tags[order_id].append(OrderTagOut(id=lookup_id, code=code, name=name, color=color))
        return tags

    async def replace_tags(
        self, order_id: uuid.UUID, lookup_ids: list[uuid.UUID]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Make the order's tags exactly `lookup_ids`; return (added, removed)."""
        of_order = (self.tenant_filter(OrderTag), OrderTag.order_id == order_id)
        current = set(await self.scalars(select(OrderTag.lookup_id).where(*of_order)))
        wanted = set(lookup_ids)
        added, removed = wanted - current, current - wanted
        if removed:
            await self.session.execute(delete(OrderTag).where(*of_order, OrderTag.lookup_id.in_(removed)))
        if added:
            await self.session.execute(
                insert(OrderTag),
                [{"tenant_id": self.tenant_id, "order_id": order_id, "lookup_id": lookup_id} for lookup_id in added],
            )
        return added, removed
