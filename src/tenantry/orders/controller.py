"""/v1/orders: create, list, get, patch (name, tags), status transitions and history.

The workspace comes only from the token; ids in the body (product, tags) answer 422 alike whether
they never existed or belong to another workspace.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.guards import requires_permission, tenant_principal
from tenantry.auth.handlers import get, patch, post
from tenantry.core.schemas import Page
from tenantry.http.etag import IfMatch, etag_of, with_etag
from tenantry.http.querying import Cursor, Limit
from tenantry.orders.schemas import OrderCreate, OrderFilters, OrderOut, OrderTransition, OrderUpdate, StatusChangeOut
from tenantry.orders.service import OrderService
from tenantry.orders.status import OrderStatus
from tenantry.tenancy.pagination import PageRequest


def provide_order_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> OrderService:
    return OrderService(db_session, tenant_principal(request), state.cursor_key)


StatusFilter = Annotated[OrderStatus | None, Parameter(description="Only orders in this status.")]
ProductFilter = Annotated[uuid.UUID | None, Parameter(description="Only orders of this product.")]
EmailFilter = Annotated[
    str | None,
    Parameter(min_length=1, max_length=320, description="Only orders of this customer email (case-insensitive)."),
]
OrderSort = Annotated[
    Literal["created_at", "-created_at", "amount_cents", "-amount_cents"],
    Parameter(description="Sort field; a leading '-' sorts descending. Ties are broken by id."),
]

read = requires_permission("orders", "read")
write = requires_permission("orders", "write")


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["Orders"]
    dependencies = {"order_service": Provide(provide_order_service, sync_to_thread=False)}

    @post("/", operation_id="createOrder", guards=[write], status_code=201)
    async def create_order(
        self, data: JSONBody[OrderCreate], order_service: NamedDependency[OrderService]
    ) -> Response[OrderOut]:
        """Place an order for a live product; the amount is its price now times the quantity, and stays so."""
        order = await order_service.create(data)
        return Response(order, status_code=201, headers={"Location": f"/v1/orders/{order.id}", "ETag": etag_of(order)})

    @get("/", operation_id="listOrders", guards=[read])
    async def list_orders(
        self,
        order_service: NamedDependency[OrderService],
        limit: Limit = 20,
        cursor: Cursor = None,
        status: StatusFilter = None,
        product_id: ProductFilter = None,
        customer_email: EmailFilter = None,
        sort: OrderSort = "created_at",
    ) -> Page[OrderOut]:
        """List orders with keyset pagination; filter by status, product or customer email."""
        return await order_service.list(
            PageRequest(limit=limit, cursor=cursor, sort=sort),
            OrderFilters(status=status, product_id=product_id, customer_email=customer_email),
        )

    @get("/{order_id:str}", operation_id="getOrder", guards=[read])
    async def get_order(
        self, order_id: FromPath[uuid.UUID], order_service: NamedDependency[OrderService]
    ) -> Response[OrderOut]:
        """Get one order with its tags, and its ETag. Another workspace's id answers 404 like a random one."""
        return with_etag(await order_service.get(order_id))

    @patch("/{order_id:str}", operation_id="updateOrder", guards=[write])
    async def update_order(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[OrderUpdate],
        order_service: NamedDependency[OrderService],
        if_match: IfMatch = None,
    ) -> Response[OrderOut]:
        """Change the customer name or replace the tags; with If-Match, only if unchanged (else 412)."""
        return with_etag(await order_service.update(order_id, data, if_match=if_match))

    @post("/{order_id:str}/transitions", operation_id="transitionOrder", guards=[write], status_code=200)
    async def transition_order(
        self,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[OrderTransition],
        order_service: NamedDependency[OrderService],
        if_match: IfMatch = None,
    ) -> Response[OrderOut]:
        """Move the order to another status; an illegal move is a 409 naming both statuses and changes nothing."""
        return with_etag(await order_service.transition(order_id, data.to, if_match=if_match))

    @get("/{order_id:str}/history", operation_id="listOrderHistory", guards=[read])
    async def list_order_history(
        self, order_id: FromPath[uuid.UUID], order_service: NamedDependency[OrderService]
    ) -> Page[StatusChangeOut]:
        """The order's status changes, oldest first (always one page: the machine allows at most four)."""
        return await order_service.history(order_id)


__all__ = ["OrderController"]
