"""Indexes for the keyset lists' sort orders.

`GET /v1/products` (and its `sort=` variants) read one workspace's live products ordered by
(column, id). Without an index on exactly that order PostgreSQL fetched every live product of the
workspace through the SKU index and sorted them for each page: 1 ms at 2,000 products, growing
with the workspace. These partial indexes (live rows only, like the list's default filter) turn a
page into a range scan that stops after `limit + 1` rows. Orders sort by created_at (indexed in
0003) or amount_cents (added here).

Built inside the migration's transaction (CREATE INDEX, not CONCURRENTLY): on a large existing
installation, build them CONCURRENTLY by hand first with these names and the upgrade keeps them.

Revision ID: 0005_list_indexes
Revises: 0004_idempotency
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_list_indexes"
down_revision: str | None = "0004_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_PRODUCT_ORDERS = ("created_at", "name", "price_cents")


def upgrade() -> None:
    for column in LIVE_PRODUCT_ORDERS:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_products_tenant_id_{column}_id_live "
            f"ON products (tenant_id, {column}, id) WHERE deleted_at IS NULL"
        )
    op.execute("CREATE INDEX IF NOT EXISTS ix_orders_tenant_id_amount_cents_id ON orders (tenant_id, amount_cents, id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_orders_tenant_id_amount_cents_id")
    for column in LIVE_PRODUCT_ORDERS:
        op.execute(f"DROP INDEX IF EXISTS ix_products_tenant_id_{column}_id_live")
