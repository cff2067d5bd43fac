"""Tenant-scoped data access for orders, their status history and their tags.

RLS is the wall; the explicit `tenant_id` filter is what lets the planner go straight to one
tenant's rows. Neither replaces the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.ids import uuid7
from tenantry.core.schemas import to_wire
from tenantry.lookups.models import Lookup
from tenantry.orders.models import Order, OrderStatusHistory, OrderTag
from tenantry.orders.schemas import OrderTagOut, StatusChangeOut


class OrderRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, order_id: uuid.UUID, *, lock: bool = False) -> Order | None:
        query = select(Order).where(Order.tenant_id == self.tenant_id, Order.id == order_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    def filtered(
        self, *, status: str | None, product_id: uuid.UUID | None, customer_email: str | None
    ) -> Select[Order]:
        query = select(Order).where(Order.tenant_id == self.tenant_id)
        if status is not None:
            query = query.where(Order.status == status)
        if product_id is not None:
            query = query.where(Order.product_id == product_id)
        if customer_email is not None:
            # Case-insensitive, on the (tenant_id, customer_email_lower) index: lower() applies to the
            # value, never to the column (a function over a column cannot drive an index under RLS).
            query = query.where(Order.customer_email_lower == func.lower(customer_email))
        return query

    async def count_for_product(self, product_id: uuid.UUID) -> int:
        query = select(func.count()).where(Order.tenant_id == self.tenant_id, Order.product_id == product_id)
        return int((await self.session.execute(query)).scalar_one())

    async def add(self, order: Order) -> Order:
        order.tenant_id = self.tenant_id
        self.session.add(order)
        await self.session.flush()
        await self.session.refresh(order)
        return order

    async def save(self, order: Order) -> Order:
        await self.session.flush()
        await self.session.refresh(order)
        return order

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
            select(OrderStatusHistory)
            .where(OrderStatusHistory.tenant_id == self.tenant_id, OrderStatusHistory.order_id == order_id)
            .order_by(OrderStatusHistory.changed_at, OrderStatusHistory.id)
        )
        return [to_wire(row, StatusChangeOut) for row in (await self.session.execute(query)).scalars()]

    # -- tags ------------------------------------------------------------------------------------

    async def tags_of(self, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[OrderTagOut]]:
        """Each order's tags, by the tags' position then code; one query for a whole page."""
        ids = list(order_ids)
        tags: dict[uuid.UUID, list[OrderTagOut]] = {order_id: [] for order_id in ids}
        if not ids:
            return tags
        query = (
            select(OrderTag.order_id, Lookup.id, Lookup.code, Lookup.name, Lookup.color)
            .join(Lookup, (Lookup.tenant_id == OrderTag.tenant_id) & (Lookup.id == OrderTag.lookup_id))
            .where(OrderTag.tenant_id == self.tenant_id, OrderTag.order_id.in_(ids))
            .order_by(OrderTag.order_id, Lookup.position, Lookup.code, Lookup.id)
        )
        for order_id, lookup_id, code, name, color in await self.session.execute(query):
            tags[order_id].append(OrderTagOut(id=lookup_id, code=code, name=name, color=color))
        return tags

    async def replace_tags(
        self, order_id: uuid.UUID, lookup_ids: list[uuid.UUID]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Make the order's tags exactly `lookup_ids`; return (added, removed)."""
        current = set(
            (
                await self.session.execute(
                    select(OrderTag.lookup_id).where(
                        OrderTag.tenant_id == self.tenant_id, OrderTag.order_id == order_id
                    )
                )
            ).scalars()
        )
        wanted = set(lookup_ids)
        added, removed = wanted - current, current - wanted
        if removed:
            await self.session.execute(
                delete(OrderTag).where(
                    OrderTag.tenant_id == self.tenant_id,
                    OrderTag.order_id == order_id,
                    OrderTag.lookup_id.in_(removed),
                )
            )
        if added:
            await self.session.execute(
                insert(OrderTag),
                [{"tenant_id": self.tenant_id, "order_id": order_id, "lookup_id": lookup_id} for lookup_id in added],
            )
        return added, removed
