"""Tenant context never leaks across pooled connections, including right after failed transactions.

One pooled connection serves every request, so each request's transaction runs on a connection
that just served another workspace, and every few requests the previous one failed mid-transaction
(a unique violation after the tenant was set, or a rejected PATCH).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import msgspec

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import Tenant, create_product, serve

WORKSPACES = 10
REQUESTS = 1000


async def test_no_foreign_rows_under_concurrency_with_one_pooled_connection(
    settings: Settings,
    make_tenant,  # type: ignore[no-untyped-def]
) -> None:
    single = msgspec.structs.replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=120.0)
    app = create_app(single)
    tenants: list[Tenant] = [await make_tenant(f"pool{i}") for i in range(WORKSPACES)]
    # serve(): requests really interleave (AsyncTestClient would run them one at a time).
    async with serve(app) as client:
        owned: dict[str, set[str]] = {}
        skus: dict[str, str] = {}
        for tenant in tenants:
            products = [await create_product(client, tenant, name=f"{tenant.id} item {n}") for n in range(3)]
            owned[str(tenant.id)] = {str(p["id"]) for p in products}
            skus[str(tenant.id)] = str(products[0]["sku"])

        in_flight = peak = 0

        async def one(n: int, tenant: Tenant) -> tuple[str, int, set[str]]:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await request(n, tenant)
            finally:
                in_flight -= 1

        async def request(n: int, tenant: Tenant) -> tuple[str, int, set[str]]:
            key = str(tenant.id)
            kind = n % 5
            if kind == 1:  # fails inside the transaction: duplicate SKU after the tenant was set
                body = {"name": "dup", "price_cents": 1, "currency": "EUR", "sku": skus[key]}
                response = await client.post("/v1/products", json=body, headers=tenant.headers)
                return "dup", response.status_code, set()
            if kind == 3:  # fails inside the transaction: PATCH to another product's SKU
                target = sorted(owned[key])[1]
                response = await client.patch(f"/v1/products/{target}", json={"sku": skus[key]}, headers=tenant.headers)
                return "patch", response.status_code, set()
            response = await client.get("/v1/products?limit=100", headers=tenant.headers)
            seen = {p["id"] for p in response.json()["data"]} if response.status_code == 200 else set()
            return key, response.status_code, seen

        cycle = itertools.cycle(tenants)
        results = await asyncio.gather(*(one(n, next(cycle)) for n in range(REQUESTS)))

    assert peak > 100, f"requests did not overlap (peak {peak} in flight)"
    statuses = Counter((kind if kind in ("dup", "patch") else "list", status) for kind, status, _ in results)
    assert statuses[("list", 200)] == REQUESTS * 3 // 5, statuses
    assert statuses[("dup", 409)] == REQUESTS // 5, statuses
    assert statuses[("patch", 409)] == REQUESTS // 5, statuses
    foreign_rows = 0
    for key, _, seen in results:
        if key in owned:
            foreign_rows += len(seen - owned[key])
            assert seen == owned[key]
    assert foreign_rows == 0
