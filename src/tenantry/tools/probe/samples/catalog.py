"""Probe sample: two products in the workspace's category (two, so B's list has a next cursor)."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def product_sample(api: TenantApi, made: Ids) -> Sample:
    def product(ids: Ids) -> dict[str, object]:
        return {
            "name": f"Product {api.marker}",
            "price_cents": 1999,
            "currency": "EUR",
            "sku": api.unique("SKU"),
            "category_id": ids["category_id"],  # re-parenting: the prober swaps in B's category
        }

    created = await api.post("/v1/products", product(made))
    await api.post("/v1/products", product(made))

    async def live_product(ids: Ids) -> dict[str, str]:
        return {"product_id": (await api.post("/v1/products", product(ids)))["id"]}

    async def deleted_product(ids: Ids) -> dict[str, str]:
        # Restore and purge need a soft-deleted product (purge answers 409 for a live one).
        fresh = await live_product(ids)
        await api.delete(f"/v1/products/{fresh['product_id']}")
        return fresh

    return Sample(
        ids={"product_id": created["id"]},
        routes={
            "POST /v1/products": Use(body=product),
            "GET /v1/products": Use(query=lambda ids: {"category_id": ids["category_id"]}),
            "GET /v1/products/{product_id}": Use(),
            "PATCH /v1/products/{product_id}": Use(
                body=lambda ids: {"name": f"Renamed {api.marker}", "category_id": ids["category_id"]}
            ),
            "DELETE /v1/products/{product_id}": Use(fresh=live_product),
            "POST /v1/products/{product_id}/restore": Use(fresh=deleted_product),
            "POST /v1/products/{product_id}/purge": Use(fresh=deleted_product),
        },
    )
