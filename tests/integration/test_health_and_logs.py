"""Health probes, the database-down answer, the access log and request ids, and suspension."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import TEST_PEPPER, Tenant, create_product, snapshot_rows

Client = AsyncTestClient[Litestar]

PROBLEM = "application/problem+json"
ACCESS_LOGGER = "tenantry.access"
ACCESS_FIELDS = {"request_id", "method", "route", "status", "duration_ms", "workspace_id"}
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
async def dead_client(settings: Settings) -> AsyncIterator[Client]:
    """An app whose database is a closed port: every connection attempt is refused at once."""
    dead = msgspec.structs.replace(
        settings, app_database_url="postgresql://nobody@127.0.0.1:1/none", db_pool_timeout_s=1.0
    )
    async with AsyncTestClient(app=create_app(dead), raise_server_exceptions=False) as client:
        yield client


def _access_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    return [json.loads(r.getMessage()) for r in records]


# --- health -----------------------------------------------------------------------------------


async def test_liveness_answers_without_a_token(client: Client) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_answers_ok_when_the_database_answers(client: Client) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_exemption_is_anchored(client: Client) -> None:
    """Only the exact health paths skip authentication; a look-alike path does not."""
    for path in ("/v1/products/health/live", "/health/live/../../v1/products", "/health/liveness"):
        response = await client.get(path)
        assert response.status_code in (401, 404), (path, response.status_code)
        assert response.status_code != 200


async def test_readiness_answers_503_fast_when_the_database_is_down(dead_client: Client) -> None:
    started = time.monotonic()
    response = await dead_client.get("/health/ready")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["status"] == 503
    assert body["type"].endswith("/service-unavailable")
    assert "nobody" not in response.text
    assert "127.0.0.1" not in response.text
    assert elapsed < 3.0


async def test_authenticated_request_answers_503_when_the_database_is_down(
    dead_client: Client, tenant_a: Tenant
) -> None:
    started = time.monotonic()
    response = await dead_client.get("/v1/products", headers=tenant_a.headers)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"].endswith("/service-unavailable")
    for needle in ("asyncpg", "Connect", "127.0.0.1", "refused", "Traceback"):
        assert needle not in response.text, needle
    assert elapsed < 3.0


# --- access log and request ids -----------------------------------------------------------------


async def test_access_log_has_one_json_record_per_request(
    client: Client, caplog: pytest.LogCaptureFixture, tenant_a: Tenant
) -> None:
    product = await create_product(client, tenant_a)
    caplog.clear()
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)

    responses = [
        await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers),
        await client.get("/v1/products", headers=tenant_a.headers),
        await client.patch(f"/v1/products/{product['id']}", json={"name": "renamed"}, headers=tenant_a.headers),
        await client.get("/v1/products"),  # no token
        await client.get("/health/live"),
    ]

    records = _access_records(caplog)
    assert len(records) == len(responses)
    for record, response in zip(records, responses, strict=True):
        assert set(record) == ACCESS_FIELDS, record
        assert record["request_id"] == response.headers["request-id"]
        assert record["status"] == response.status_code
        assert isinstance(record["duration_ms"], (int, float))
        assert record["duration_ms"] >= 0

    expected = [
        ("GET", "/v1/products/{product_id}", 200, str(tenant_a.id)),
        ("GET", "/v1/products", 200, str(tenant_a.id)),
        ("PATCH", "/v1/products/{product_id}", 200, str(tenant_a.id)),
        ("GET", "/v1/products", 401, None),
        ("GET", "/health/live", 200, None),
    ]
    assert [(r["method"], r["route"], r["status"], r["workspace_id"]) for r in records] == expected
    assert len({r["request_id"] for r in records}) == len(records)
    # The route is the template: no product id ever lands in the route field.
    assert all(str(product["id"]) not in str(r["route"]) for r in records)


async def test_unmatched_routes_are_logged_without_the_path(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    secret_looking_path = f"/v1/{uuid.uuid4()}/nothing"
    response = await client.get(secret_looking_path)
    assert response.status_code == 404
    (record,) = _access_records(caplog)
    assert record["status"] == 404
    assert record["workspace_id"] is None
    assert record["request_id"] == response.headers["request-id"]
    assert secret_looking_path not in json.dumps(record)


async def test_generated_request_id_is_returned_and_logged(
    client: Client, caplog: pytest.LogCaptureFixture, tenant_a: Tenant
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    response = await client.get("/v1/products", headers=tenant_a.headers)
    request_id = response.headers["request-id"]
    assert GENERATED_REQUEST_ID.match(request_id)
    (record,) = _access_records(caplog)
    assert record["request_id"] == request_id


async def test_valid_client_request_id_is_kept(
    client: Client, caplog: pytest.LogCaptureFixture, tenant_a: Tenant
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    headers = {**tenant_a.headers, "X-Request-Id": "client-req-12345"}
    response = await client.get("/v1/products", headers=headers)
    assert response.headers["request-id"] == "client-req-12345"
    (record,) = _access_records(caplog)
    assert record["request_id"] == "client-req-12345"


@pytest.mark.parametrize(
    "client_id",
    ["has spaces in it", "x" * 300, "short", "quote\"and'brace{}", "new\\nline-1234"],
    ids=["spaces", "300 chars", "too short", "quotes", "escaped newline"],
)
async def test_invalid_client_request_id_is_replaced(
    client: Client, caplog: pytest.LogCaptureFixture, tenant_a: Tenant, client_id: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    response = await client.get("/v1/products", headers={**tenant_a.headers, "X-Request-Id": client_id})
    assert response.status_code == 200
    request_id = response.headers["request-id"]
    assert request_id != client_id
    assert GENERATED_REQUEST_ID.match(request_id)
    (record,) = _access_records(caplog)
    assert record["request_id"] == request_id
    assert client_id not in caplog.text


async def test_no_log_record_contains_a_token(
    client: Client, caplog: pytest.LogCaptureFixture, tenant_a: Tenant
) -> None:
    from tenantry.auth.tokens import generate_token

    unknown = generate_token(TEST_PEPPER).token  # well formed, never stored: reaches the resolver
    caplog.set_level(logging.DEBUG)  # every logger, every level
    caplog.set_level(
        logging.DEBUG, logger="sqlalchemy"
    )  # SQLAlchemy pins its own logger at WARN: SQL and parameters too

    product = await create_product(client, tenant_a)
    await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers)
    await client.get(f"/v1/products/{uuid.uuid4()}", headers=tenant_a.headers)
    await client.post(
        "/v1/products", content=b"{broken", headers={**tenant_a.headers, "Content-Type": "application/json"}
    )
    await client.get("/v1/products", headers={"Authorization": f"Bearer {unknown}"})
    await client.get("/v1/products", headers={"Authorization": f"Bearer {tenant_a.token}x"})
    await client.get("/v1/products", headers={"Authorization": f"Basic {tenant_a.token}"})

    assert {"tenantry.access", "sqlalchemy.engine.Engine"} <= {r.name for r in caplog.records}
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        rendered = formatter.format(record) + repr(record.__dict__)
        for token in (tenant_a.token, unknown):
            assert token not in rendered, record.name
            assert token[-43:] not in rendered, record.name


# --- suspension ---------------------------------------------------------------------------------


async def test_suspended_workspace_gets_403_and_its_data_is_unchanged(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    product = await create_product(client, tenant_a)
    await create_product(client, tenant_b)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET status = 'suspended' WHERE id = :id"), {"id": tenant_a.id}
        )
    before_a = await snapshot_rows(admin_engine, "products", tenant_a.id)
    before_b = await snapshot_rows(admin_engine, "products", tenant_b.id)

    attempts = [
        await client.get("/v1/products", headers=tenant_a.headers),
        await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers),
        await client.post(
            "/v1/products",
            json={"name": "x", "price_cents": 1, "currency": "EUR", "sku": "SUSPENDED-1"},
            headers=tenant_a.headers,
        ),
        await client.patch(f"/v1/products/{product['id']}", json={"name": "changed"}, headers=tenant_a.headers),
        await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers),
    ]

    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"].endswith("/workspace-suspended")
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before_a
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before_b
    # Another workspace is not affected by A's suspension.
    assert (await client.get("/v1/products", headers=tenant_b.headers)).status_code == 200


async def test_reactivated_workspace_is_served_again(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    statement = text("UPDATE public.workspaces SET status = :s WHERE id = :id")
    async with admin_engine.begin() as connection:
        await connection.execute(statement, {"s": "suspended", "id": tenant_a.id})
    assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 403
    async with admin_engine.begin() as connection:
        await connection.execute(statement, {"s": "active", "id": tenant_a.id})
    assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
