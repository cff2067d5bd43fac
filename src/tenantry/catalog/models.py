from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base, TenantScoped, Timestamps


class Product(TenantScoped, Timestamps, Base):
    __tablename__ = "products"
    # The columns the database fills in (created_at, updated_at, name_lower) come back with the
    # INSERT or UPDATE itself (RETURNING): no second statement to read the row back (docs/performance.md).
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_cents"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        # SKU is unique per workspace among live products; a deleted product frees its SKU.
        Index(
            "uq_products_tenant_id_sku_live",
            "tenant_id",
            "sku",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The category must be this workspace's lookup (of kind product_category: the service checks).
        ForeignKeyConstraint(["tenant_id", "category_id"], ["lookups.tenant_id", "lookups.id"]),
        Index("ix_products_tenant_id_category_id", "tenant_id", "category_id"),
        # name_prefix search: starts_with(name_lower, ...) is a range scan on this index (see the repository).
        Index("ix_products_tenant_id_name_lower", "tenant_id", text("name_lower text_pattern_ops")),
        # One per sort order of the live list (migration 0005): a page is a range scan, not a sort.
        *(
            Index(
                f"ix_products_tenant_id_{column}_id_live",
                "tenant_id",
                column,
                "id",
                postgresql_where=text("deleted_at IS NULL"),
            )
            for column in ("created_at", "name", "price_cents")
        ),
    )

    tenant_id = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    name_lower: Mapped[str] = mapped_column(Text, Computed("lower((name)::text)", persisted=True), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    category_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
