"""Probe sample: two orders of the workspace's product, tagged with its order tag."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def order_sample(api: TenantApi, made: Ids) -> Sample:
    def order(ids: Ids) -> dict[str, object]:
        return {
            "product_id": ids["product_id"],
            "customer_email": api.email(api.unique("customer")),
            "customer_name": f"Customer {api.marker}",
            "quantity": 1,
            "tag_ids": [ids["order_tag_id"]],
        }

    created = await api.post("/v1/orders", order(made))
    await api.post("/v1/orders", order(made))

    async def pending_order(ids: Ids) -> dict[str, str]:
        # pending -> processing happens once per order: the second move would be a 409.
        return {"order_id": (await api.post("/v1/orders", order(ids)))["id"]}

    return Sample(
        ids={"order_id": created["id"]},
        routes={
            "POST /v1/orders": Use(body=order),
            "GET /v1/orders": Use(query=lambda ids: {"product_id": ids["product_id"]}),
            "GET /v1/orders/{order_id}": Use(),
            "PATCH /v1/orders/{order_id}": Use(
                body=lambda ids: {"customer_name": f"Renamed {api.marker}", "tag_ids": [ids["order_tag_id"]]}
            ),
            "POST /v1/orders/{order_id}/transitions": Use(body=lambda ids: {"to": "processing"}, fresh=pending_order),
            "GET /v1/orders/{order_id}/history": Use(),
        },
    )
