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
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.db.base import Base, TenantScoped, Timestamps

_STATUSES = "('created', 'processing', 'paid', 'refunded', 'cancelled')"


class Order(TenantScoped, Timestamps, Base):
    """A product bought at the price of the moment: amount and currency never follow later price changes."""

    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "product_id"], ["products.tenant_id", "products.id"]),
        CheckConstraint("quantity BETWEEN 1 AND 10000", name="quantity"),
        CheckConstraint("amount_cents >= 0", name="amount_cents"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        CheckConstraint(f"status IN {_STATUSES}", name="status"),
        Index("ix_orders_tenant_id_product_id", "tenant_id", "product_id"),
        Index("ix_orders_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        Index("ix_orders_tenant_id_amount_cents_id", "tenant_id", "amount_cents", "id"),
        Index("ix_orders_tenant_id_customer_email_lower", "tenant_id", "customer_email_lower"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    customer_email: Mapped[str] = mapped_column(String(320), nullable=False)
    # The case-insensitive filter key: a stored copy, since lower(column) in a query cannot use an index under RLS.
    customer_email_lower: Mapped[str] = mapped_column(Text, Computed("lower((customer_email)::text)", persisted=True))
    customer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="created")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class OrderStatusHistory(TenantScoped, Base):
    """Append-only: one row per status an order entered, the first with no `from_status`."""

    __tablename__ = "order_status_history"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"]),
        # ON DELETE SET NULL (changed_by_member_id) in the migration: the history outlives the member.
        ForeignKeyConstraint(
            ["tenant_id", "changed_by_member_id"], ["memberships.tenant_id", "memberships.id"], ondelete="SET NULL"
        ),
        CheckConstraint(f"from_status IN {_STATUSES}", name="from_status"),
        CheckConstraint(f"to_status IN {_STATUSES}", name="to_status"),
        Index("ix_order_status_history_tenant_id_order_id", "tenant_id", "order_id"),
        Index("ix_order_status_history_tenant_id_changed_by_member_id", "tenant_id", "changed_by_member_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    changed_by_member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class OrderTag(Base):
    """An order carries a lookup of kind order_tag. The key (tenant, order, lookup) also indexes the order key."""

    __tablename__ = "order_tags"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "order_id", "lookup_id"),
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"]),
        ForeignKeyConstraint(["tenant_id", "lookup_id"], ["lookups.tenant_id", "lookups.id"]),
        Index("ix_order_tags_tenant_id_lookup_id", "tenant_id", "lookup_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workspaces.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    lookup_id: Mapped[uuid.UUID] = mapped_column(Uuid)
