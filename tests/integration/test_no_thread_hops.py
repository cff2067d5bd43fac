"""The hot paths run on the event loop: no hook, guard, dependency or handler hops to a thread.

Litestar runs a plain (non-async) hook, guard or dependency with `sync_to_thread` unless told
otherwise: a worker-thread round trip per call. The before_send hook that fixes `Allow` did that
for both messages of every answer (docs/performance.md). This fails if any such hop comes back on
the product list, get or create.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from tenantry.settings import Settings
from tests.support import Tenant
from tests.support.http import serve


async def test_product_requests_never_run_code_in_a_thread(
    fresh_app: Litestar, settings: Settings, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []

    async def no_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__qualname__", repr(fn)))
        return fn(*args, **kwargs)

    async with serve(fresh_app) as client:
        monkeypatch.setattr("litestar.utils.sync.sync_to_thread", no_thread)
        body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": "HOP-1"}
        created = await client.post("/v1/products", json=body, headers=tenant_a.headers)
        assert created.status_code == 201, created.text
        got = await client.get(f"/v1/products/{created.json()['id']}", headers=tenant_a.headers)
        assert got.status_code == 200
        listed = await client.get("/v1/products?limit=20", headers=tenant_a.headers)
        assert listed.status_code == 200
        assert (await client.options("/v1/products", headers=tenant_a.headers)).headers["allow"]
    assert hops == []
