"""Errors of the product catalog."""

from __future__ import annotations

from tenantry.core.errors import Conflict


class ProductHasOrders(Conflict):
    """A product that orders refer to can be soft-deleted but never purged; the problem says how many."""

    type = "product-has-orders"
    title = "Product has orders"

    def __init__(self, order_count: int) -> None:
        orders = "1 order refers" if order_count == 1 else f"{order_count} orders refer"
        super().__init__(
            f"{orders} to this product: it can stay soft-deleted but cannot be purged.",
            errors=[{"field": "order_count", "message": str(order_count)}],
        )
        self.order_count = order_count
