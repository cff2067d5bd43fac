"""Probe sample: two orders of the workspace's product, tagged with its order tag."""

from __future__ import annotations

from tenantry.probe.samples import Ids, Sample, TenantApi, Use


async def order_sample(api: TenantApi, made: Ids) -> Sample:
    def order(ids: Ids) -> dict[str, object]:
        return {
            "product_id": ids["product_id"],
            "customer_email": f"{api.unique('customer')}@example.com",
            "customer_name": f"Customer {api.marker}",
            "quantity": 1,
            "tag_ids": [ids["order_tag_id"]],
        }

    created = await api.post("/v1/orders", order(made))
    await api.post("/v1/orders", order(made))
    return Sample(
        ids={"order_id": created["id"]},
        routes={
            "POST /v1/orders": Use(body=order),
            "GET /v1/orders": Use(query=lambda ids: {"product_id": ids["product_id"]}),
            "GET /v1/orders/{order_id}": Use(),
            "PATCH /v1/orders/{order_id}": Use(
                body=lambda ids: {"customer_name": f"Renamed {api.marker}", "tag_ids": [ids["order_tag_id"]]}
            ),
            "POST /v1/orders/{order_id}/transitions": Use(body=lambda ids: {"to": "processing"}),
            "GET /v1/orders/{order_id}/history": Use(),
        },
    )
