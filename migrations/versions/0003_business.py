"""The business domain: lookup lists, product categories and name search, orders, status history, tags.

Every foreign key between tenant tables is composite with tenant_id and has an index led by its
columns (docs/security.md, contract rule 5): a plain key would let one workspace point at another's row, and an unindexed
one makes every delete of the referenced row scan the referencing table.

Revision ID: 0003_business
Revises: 0002_lifecycle
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_business"
down_revision: str | None = "0002_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

uuid_default = sa.text("gen_random_uuid()")
now = sa.text("now()")
STATUSES = "('created', 'processing', 'paid', 'refunded', 'cancelled')"


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=now)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["workspaces.id"], name=f"fk_{table}_tenant_id_workspaces")


def upgrade() -> None:
    op.create_table(
        "lookups",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("color", sa.String(7), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_lookups"),
        _tenant_fk("lookups"),
        sa.UniqueConstraint("tenant_id", "kind", "code", name="uq_lookups_tenant_id_kind_code"),
        sa.CheckConstraint("kind IN ('product_category', 'order_tag')", name="ck_lookups_kind"),
        sa.CheckConstraint("color ~ '^#[0-9A-F]{6}$'", name="ck_lookups_color"),
        sa.CheckConstraint("position >= 0", name="ck_lookups_position"),
    )

    op.add_column("products", sa.Column("category_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "fk_products_tenant_id_category_id_lookups",
        "products",
        "lookups",
        ["tenant_id", "category_id"],
        ["tenant_id", "id"],
    )
    op.create_index("ix_products_tenant_id_category_id", "products", ["tenant_id", "category_id"])
    # name_prefix search. Under RLS the planner may use a caller's condition as an index condition
    # only if it is leakproof, and lower(name) is not: an index on lower(name) would never serve the
    # tenant role. A stored lower-cased copy is searched with starts_with() (leakproof), which the
    # planner turns into a range scan on text_pattern_ops whatever the collation.
    op.add_column(
        "products",
        sa.Column("name_lower", sa.Text(), sa.Computed("lower((name)::text)", persisted=True), nullable=False),
    )
    op.create_index(
        "ix_products_tenant_id_name_lower",
        "products",
        ["tenant_id", sa.text("name_lower text_pattern_ops")],
    )

    op.create_table(
        "orders",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=False),
        # The case-insensitive filter key (a stored copy, not lower() in the query: see name_lower).
        sa.Column(
            "customer_email_lower",
            sa.Text(),
            sa.Computed("lower((customer_email)::text)", persisted=True),
            nullable=False,
        ),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="created"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_orders"),
        _tenant_fk("orders"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "product_id"],
            ["products.tenant_id", "products.id"],
            name="fk_orders_tenant_id_product_id_products",
        ),
        sa.CheckConstraint("quantity BETWEEN 1 AND 10000", name="ck_orders_quantity"),
        sa.CheckConstraint("amount_cents >= 0", name="ck_orders_amount_cents"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_orders_currency"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_orders_status"),
    )
    op.create_index("ix_orders_tenant_id_product_id", "orders", ["tenant_id", "product_id"])
    op.create_index("ix_orders_tenant_id_created_at_id", "orders", ["tenant_id", "created_at", "id"])
    op.create_index("ix_orders_tenant_id_customer_email_lower", "orders", ["tenant_id", "customer_email_lower"])

    op.create_table(
        "order_status_history",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False, server_default=uuid_default),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        _ts("changed_at"),
        sa.Column("changed_by_member_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_order_status_history"),
        _tenant_fk("order_status_history"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name="fk_order_status_history_tenant_id_order_id_orders",
        ),
        sa.CheckConstraint(f"from_status IN {STATUSES}", name="ck_order_status_history_from_status"),
        sa.CheckConstraint(f"to_status IN {STATUSES}", name="ck_order_status_history_to_status"),
    )
    # The history outlives the member who made a change: removing the member only forgets who it was.
    op.execute(
        "ALTER TABLE order_status_history ADD CONSTRAINT "
        "fk_order_status_history_tenant_id_changed_by_member_id_memberships "
        "FOREIGN KEY (tenant_id, changed_by_member_id) REFERENCES memberships (tenant_id, id) "
        "ON DELETE SET NULL (changed_by_member_id)"
    )
    op.create_index("ix_order_status_history_tenant_id_order_id", "order_status_history", ["tenant_id", "order_id"])
    op.create_index(
        "ix_order_status_history_tenant_id_changed_by_member_id",
        "order_status_history",
        ["tenant_id", "changed_by_member_id"],
    )

    # The primary key (tenant_id, order_id, lookup_id) is also the index of the key to orders.
    op.create_table(
        "order_tags",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("lookup_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "lookup_id", name="pk_order_tags"),
        _tenant_fk("order_tags"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name="fk_order_tags_tenant_id_order_id_orders"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lookup_id"],
            ["lookups.tenant_id", "lookups.id"],
            name="fk_order_tags_tenant_id_lookup_id_lookups",
        ),
    )
    op.create_index("ix_order_tags_tenant_id_lookup_id", "order_tags", ["tenant_id", "lookup_id"])


def downgrade() -> None:
    op.drop_table("order_tags")
    op.drop_table("order_status_history")
    op.drop_table("orders")
    op.drop_index("ix_products_tenant_id_name_lower", "products")
    op.drop_column("products", "name_lower")
    op.drop_index("ix_products_tenant_id_category_id", "products")
    op.drop_constraint("fk_products_tenant_id_category_id_lookups", "products", type_="foreignkey")
    op.drop_column("products", "category_id")
    op.drop_table("lookups")
