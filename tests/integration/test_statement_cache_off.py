"""With the prepared-statement caches off (the PgBouncer < 1.21 setting) the API still works."""

from __future__ import annotations

import msgspec
from litestar.testing import AsyncTestClient

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import Tenant, create_product


async def test_api_serves_with_statement_cache_off(settings: Settings, tenant_a: Tenant) -> None:
    app = create_app(msgspec.structs.replace(settings, db_statement_cache=False, db_pool_size=2))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        created = await create_product(client, tenant_a)
        for _ in range(5):  # the same statements again, on the same pooled connections
            listed = await client.get("/v1/products", headers=tenant_a.headers)
            assert listed.status_code == 200
            assert created["id"] in {p["id"] for p in listed.json()["data"]}
