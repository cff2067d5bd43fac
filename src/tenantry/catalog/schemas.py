"""Product wire types. Unknown fields (tenant_id among them) are rejected, never honoured."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.core.schemas import END, LongText, ShortText

PriceCents = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000_000, description="Price in integer cents.")]
Currency = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{3}" + END, description="ISO 4217 code, e.g. EUR.", examples=["EUR"])
]
Sku = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*" + END, examples=["TSHIRT-M"]),
]


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ShortText
    price_cents: PriceCents
    currency: Currency
    sku: Sku
    description: LongText = ""
    category_id: uuid.UUID | None = None


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change."""

    name: ShortText | UnsetType = UNSET
    description: LongText | UnsetType = UNSET
    price_cents: PriceCents | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    sku: Sku | UnsetType = UNSET
    category_id: uuid.UUID | UnsetType | None = UNSET


class ProductOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    description: str
    price_cents: int
    currency: str
    sku: str
    category_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class ProductFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of products is narrowed to; every field is part of the cursor's binding."""

    include_deleted: bool = False
    name_prefix: str | None = None
    category_id: uuid.UUID | None = None
