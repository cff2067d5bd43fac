"""Probe sample: a product category and an order tag (products and orders refer to them)."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def lookup_sample(api: TenantApi, made: Ids) -> Sample:
    def category(ids: Ids) -> dict[str, object]:
        return {"kind": "product_category", "code": api.unique("cat"), "name": f"Category {api.marker}"}

    created = await api.post("/v1/lookups", category(made))

    async def unused_category(ids: Ids) -> dict[str, str]:
        # The sample's category is in use by products (DELETE answers 409): delete an unused one.
        return {"lookup_id": (await api.post("/v1/lookups", category(ids)))["id"]}

    tag = await api.post("/v1/lookups", {"kind": "order_tag", "code": api.unique("tag"), "name": f"Tag {api.marker}"})
    return Sample(
        ids={"lookup_id": created["id"], "category_id": created["id"], "order_tag_id": tag["id"]},
        routes={
            "POST /v1/lookups": Use(body=category),
            "GET /v1/lookups": Use(query=lambda ids: {"kind": "product_category"}),
            "GET /v1/lookups/{lookup_id}": Use(),
            "PATCH /v1/lookups/{lookup_id}": Use(body=lambda ids: {"name": f"Renamed {api.marker}"}),
            "DELETE /v1/lookups/{lookup_id}": Use(fresh=unused_category),
        },
    )
