"""The API client type, an in-loop client for concurrent requests, and the requests most modules make."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.tenants import Tenant

Client = AsyncTestClient[Litestar]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def auth_changes_delivered(app: Litestar) -> None:
    """Wait until the app's principal cache has applied every change committed so far.

    A test that changes tokens, members or workspaces straight in the database is another process
    as far as the app is concerned: its cache learns of the change by notification, within
    milliseconds. The `client` fixture waits for that before each request, as a next request that
    arrives later than that would; tests/isolation/test_principal_cache.py tests the timing itself.
    """
    listener = app.state.get("auth_listener")
    if listener is not None:
        await listener.sync()


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client that runs the app in this event loop, so concurrent requests really interleave.

    Litestar's AsyncTestClient hands each request to a portal thread and blocks until it is done,
    which serializes requests however many are gathered; httpx's ASGI transport does not. The app
    must be one of the test's own (the `fresh_app` fixture): this runs its lifespan.
    """
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def create_product(client: Client, tenant: Tenant, **fields: object) -> dict[str, Any]:
    body = {"name": "Widget", "price_cents": 1999, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
    body.update(fields)
    response = await client.post("/v1/products", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def answer(client: Client, tenant: Tenant, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
    """Status and exact body bytes, for comparing a foreign id's answer with a random id's."""
    response = await client.request(method, path, headers=tenant.headers, **kwargs)
    return response.status_code, response.content


async def all_pages(client: Client, path: str, tenant: Tenant, limit: int, **params: object) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return the pages as received."""
    pages = []
    cursor: str | None = None
    for _ in range(200):
        query: dict[str, object] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(path, params=query, headers=tenant.headers)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if not page["has_more"]:
            return pages
        cursor = page["next_cursor"]
        assert cursor, page
    raise AssertionError("pagination never ended")
