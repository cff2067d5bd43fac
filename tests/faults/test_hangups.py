"""A client hanging up mid-request never leaves a transaction open: no `idle in transaction`
backend afterwards, whether it hung up while its request waited inside a transaction or before
its body was complete; and a write whose answer was lost is retried safely with its
Idempotency-Key (docs/06-operations.md, "Failure modes")."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from tenantry.settings import Settings
from tests.faults.conftest import database_of, faults_settings
from tests.faults.harness import PrivatePostgres, api_client, eventually, products_locked
from tests.support import Tenant

pytestmark = pytest.mark.faults


async def _raw(port: int, head: str, body: bytes) -> asyncio.StreamWriter:
    """Send a request (or part of one) on a socket of its own and return the open socket."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    await writer.drain()
    return writer


def _post(path: str, tenant: Tenant, body: bytes, *, length: int | None = None, key: str | None = None) -> str:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {tenant.token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
    ]
    if key:
        lines.append(f"Idempotency-Key: {key}")
    return "\r\n".join(lines) + "\r\n\r\n"


def _get(path: str, tenant: Tenant) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tenant.token}\r\n\r\n"


async def _backends(server: PrivatePostgres, database: str) -> list[asyncpg.Record]:
    return await server.sql(
        "SELECT state, wait_event_type FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tenantry'",
        database,
    )


async def test_hanging_up_mid_request_leaves_no_transaction_open(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant
) -> None:
    database = database_of(fault_settings)
    settings = faults_settings(private_server, database, db_pool_size=8, db_statement_timeout_ms=20_000)
    skus = [f"H-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    keyed = {sku: f"hangup-{sku}" for sku in skus[2:]}

    def body(sku: str) -> bytes:
        return json.dumps({"name": "Hang", "price_cents": 1, "currency": "EUR", "sku": sku}).encode()

    async with api_client(settings) as client:
        assert (await client.get("/v1/products", headers=fault_tenant.headers)).status_code == 200
        port = client.base_url.port
        assert port is not None
        async with products_locked(private_server, database):
            writers = [
                await _raw(port, _post("/v1/products", fault_tenant, body(sku), key=keyed.get(sku)), body(sku))
                for sku in skus
            ]
            writers.append(await _raw(port, _get("/v1/products", fault_tenant), b""))
            # Bodies cut short, with and without an Idempotency-Key: the server waits for the rest.
            partial = body("H-partial")
            writers.append(
                await _raw(port, _post("/v1/products", fault_tenant, b"", length=len(partial)), partial[:10])
            )
            writers.append(
                await _raw(
                    port,
                    _post("/v1/products", fault_tenant, b"", length=len(partial), key="hangup-partial"),
                    partial[:10],
                )
            )

            async def all_waiting() -> bool:
                rows = await _backends(private_server, database)
                return sum(1 for row in rows if row["wait_event_type"] == "Lock") >= len(skus) + 1

            await eventually(all_waiting)
            for writer in writers:  # every client hangs up while its request waits inside a transaction
                writer.close()
            await asyncio.sleep(0.2)
        # The lock is gone: the requests finish for nobody. No transaction may stay open.

        async def settled() -> bool:
            rows = await _backends(private_server, database)
            return all(row["state"] == "idle" for row in rows)

        await eventually(settled, within_s=15)
        open_transactions = await private_server.sql(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
            database,
        )
        assert open_transactions[0]["n"] == 0
        # The client never saw an answer: a retry with the same key gets the one that was stored.
        for sku, key in keyed.items():
            again = await client.post(
                "/v1/products",
                content=body(sku),
                headers={**fault_tenant.headers, "Idempotency-Key": key, "Content-Type": "application/json"},
            )
            assert again.status_code == 201, again.text
            assert again.json()["sku"] == sku
        assert (await client.get("/v1/products", headers=fault_tenant.headers)).status_code == 200
    rows = await private_server.sql(
        "SELECT sku, count(*) AS n FROM products WHERE tenant_id = $1 AND sku LIKE 'H-%' GROUP BY sku",
        fault_tenant.id,
        database=database,
    )
    counts = {row["sku"]: row["n"] for row in rows}
    for sku in keyed:
        assert counts.get(sku) == 1  # created once, however often it was sent
    assert "H-partial" not in counts  # its body never arrived: nothing ran
