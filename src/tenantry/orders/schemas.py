"""Order wire types. Unknown fields (tenant_id among them) are rejected, never honoured."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.core.schemas import Email, ShortText
from tenantry.orders.status import OrderStatus

Quantity = Annotated[int, msgspec.Meta(ge=1, le=10_000, description="How many, 1 to 10000.")]
TagIds = Annotated[
    list[uuid.UUID],
    msgspec.Meta(max_length=50, description="Lookup ids of kind order_tag; the order's whole set of tags."),
]


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The amount and currency are not accepted: they are the product's at the moment of the order."""

    product_id: uuid.UUID
    customer_email: Email
    customer_name: ShortText
    quantity: Quantity
    tag_ids: TagIds = msgspec.field(default_factory=list)


class OrderUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change; `tag_ids` replaces the whole set of tags."""

    customer_name: ShortText | UnsetType = UNSET
    tag_ids: TagIds | UnsetType = UNSET


class OrderTransition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    to: OrderStatus


class OrderTagOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    code: str
    name: str
    color: str | None


class OrderFields(msgspec.Struct, kw_only=True):
    """The stored columns of an order (read off the row by `to_wire`)."""

    id: uuid.UUID
    product_id: uuid.UUID
    customer_email: str
    customer_name: str
    quantity: int
    amount_cents: int
    currency: str
    status: str
    created_at: datetime
    updated_at: datetime


class OrderOut(OrderFields, kw_only=True):
    """An order and its tags (ordered by the tags' position, then code)."""

    tags: list[OrderTagOut]


class StatusChangeOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    from_status: str | None
    to_status: str
    changed_at: datetime
    changed_by_member_id: uuid.UUID | None


class OrderFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of orders is narrowed to; every field is part of the cursor's binding.

    `customer_email` is lower-cased before it gets here: the match is case-insensitive, so a cursor
    from `Ada@x` continues the list of `ada@x`.
    """

    status: str | None = None
    product_id: uuid.UUID | None = None
    customer_email: str | None = None
