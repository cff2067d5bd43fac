"""Lookup wire types. Unknown fields (tenant_id among them) are rejected, never honoured."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.core.schemas import END, LongText, ShortText

LookupKind = Literal["product_category", "order_tag"]
Code = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*" + END,
        description="Unique per workspace and kind: lower-case letters, digits, '-' and '_'.",
        examples=["express"],
    ),
]
Color = Annotated[
    str,
    msgspec.Meta(pattern=r"^#[0-9A-Fa-f]{6}" + END, description="#RRGGBB; stored upper-case.", examples=["#1E88E5"]),
]
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="Display order, 0 first.")]


class LookupCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: LookupKind
    code: Code
    name: ShortText
    description: LongText = ""
    color: Color | None = None
    position: Position = 0


class LookupUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change. `kind` may be repeated but never changed."""

    kind: LookupKind | UnsetType = UNSET
    code: Code | UnsetType = UNSET
    name: ShortText | UnsetType = UNSET
    description: LongText | UnsetType = UNSET
    color: Color | UnsetType | None = UNSET
    position: Position | UnsetType = UNSET


class LookupFields(msgspec.Struct, kw_only=True):
    """The stored columns of an entry (read off the row by `to_wire`)."""

    id: uuid.UUID
    kind: str
    code: str
    name: str
    description: str
    color: str | None
    position: int
    created_at: datetime
    updated_at: datetime


class LookupOut(LookupFields, kw_only=True):
    """An entry and how many rows use it: products for a category, orders for a tag."""

    usage_count: int


class LookupFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of entries is narrowed to; every field is part of the cursor's binding."""

    kind: str | None = None
