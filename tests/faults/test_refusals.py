"""The database refusing work: connections (ALLOW_CONNECTIONS false), writes (read-only during a
failover), time (statement timeout), pool slots, and a server that accepts but never answers.
Each is a 503 with Retry-After for every request it touches, never a 500 and never a hang
(docs/06-operations.md, "Failure modes")."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tenantry.settings import Settings
from tests.faults.conftest import database_of, faults_settings
from tests.faults.harness import (
    PrivatePostgres,
    api_client,
    assert_writes_accounted,
    eventually,
    products_locked,
    recovered,
    terminate_app_backends,
    under_load,
)
from tests.support import Tenant

pytestmark = pytest.mark.faults


async def until_waiting_on_a_lock(server: PrivatePostgres, database: str) -> None:
    async def waiting() -> bool:
        query = "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
        return bool(await server.sql(query, database))

    await eventually(waiting)


async def test_every_request_gets_503_while_the_database_refuses_connections(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant
) -> None:
    """Issue 14 item 4: SQLSTATE 55000 on connect was a 503 for the first request, 500 after."""
    database = database_of(fault_settings)
    async with api_client(fault_settings) as client, under_load(client, fault_tenant.headers) as load:
        try:
            await private_server.sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await terminate_app_backends(private_server, database)
            refused = len(load.tally.refused)
            await load.until(lambda: len(load.tally.refused) >= refused + 10)
            # Now every request is refused, whatever it is and however many come.
            answers = [
                await client.get("/v1/products", headers=fault_tenant.headers),
                await client.get("/v1/whoami", headers=fault_tenant.headers),
                *[await client.post("/v1/products", json={}, headers=fault_tenant.headers) for _ in range(3)],
                await client.get("/health/ready"),
            ]
            assert [a.status_code for a in answers] == [503] * len(answers), [a.text for a in answers]
            assert all(a.headers["Retry-After"] for a in answers)
            assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
        finally:
            await private_server.sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await recovered(client, fault_tenant.headers, within_s=10)
        before = len(load.tally.acknowledged)
        await load.until(lambda: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    assert tally.statuses[503] >= 10
    stored = await assert_writes_accounted(private_server, database, fault_tenant.id, tally)
    print(f"allow_connections false: {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused")


async def test_read_only_during_a_failover_gives_503_with_nothing_half_written(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant
) -> None:
    database = database_of(fault_settings)
    async with api_client(fault_settings) as client, under_load(client, fault_tenant.headers) as load:
        try:
            # What a primary demoted mid-failover looks like to its open sessions.
            await private_server.sql("ALTER SYSTEM SET default_transaction_read_only = on")
            await private_server.sql("SELECT pg_reload_conf()")
            refused = len(load.tally.refused)
            await load.until(lambda: len(load.tally.refused) >= refused + 10)
            during = await client.post(
                "/v1/products",
                json={"name": "RO", "price_cents": 1, "currency": "EUR", "sku": "RO-1"},
                headers=fault_tenant.headers,
            )
            assert during.status_code == 503, during.text
            assert during.headers["Retry-After"]
            read = await client.get("/v1/products", headers=fault_tenant.headers)
            assert read.status_code == 200  # reads go on
        finally:
            await private_server.sql("ALTER SYSTEM RESET default_transaction_read_only")
            await private_server.sql("SELECT pg_reload_conf()")
        before = len(load.tally.acknowledged)
        await load.until(lambda: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    stored = await assert_writes_accounted(private_server, database, fault_tenant.id, tally)
    assert "RO-1" not in stored
    print(f"read only: {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused")


async def test_statement_timeout_gives_503(
    private_server: PrivatePostgres, faults_database: str, fault_tenant: Tenant
) -> None:
    settings = faults_settings(private_server, faults_database, db_statement_timeout_ms=300)
    async with api_client(settings) as client, under_load(client, fault_tenant.headers) as load:
        async with products_locked(private_server, faults_database):
            refused = len(load.tally.refused)
            await load.until(lambda: len(load.tally.refused) >= refused + 8)
            late = await client.get("/v1/products", headers=fault_tenant.headers)
            assert late.status_code == 503, late.text
            assert late.json()["detail"] == "The database took too long to answer."
        before = len(load.tally.acknowledged)
        await load.until(lambda: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    stored = await assert_writes_accounted(private_server, faults_database, fault_tenant.id, tally)
    print(f"statement timeout: {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused")


async def test_an_exhausted_pool_answers_503_with_retry_after_within_the_pool_timeout(
    private_server: PrivatePostgres, faults_database: str, fault_tenant: Tenant
) -> None:
    """Issue 11: never a hang. One pooled connection, held by a request stuck on a lock."""
    settings = faults_settings(
        private_server,
        faults_database,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_s=1.0,
        db_statement_timeout_ms=20_000,
    )
    async with api_client(settings) as client:
        assert (await client.get("/v1/products", headers=fault_tenant.headers)).status_code == 200
        async with products_locked(private_server, faults_database):
            holder = asyncio.create_task(client.get("/v1/products", headers=fault_tenant.headers))
            await until_waiting_on_a_lock(private_server, faults_database)
            started = time.monotonic()
            refused = await client.post(
                "/v1/products",
                json={"name": "P", "price_cents": 1, "currency": "EUR", "sku": "POOL-1"},
                headers=fault_tenant.headers,
            )
            waited = time.monotonic() - started
        held = await holder
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert waited < 1.0 + 4  # the pool timeout, and a generous margin: never a hang
    assert held.status_code == 200
    rows = await private_server.sql(
        "SELECT count(*) AS n FROM products WHERE tenant_id = $1 AND sku = 'POOL-1'",
        fault_tenant.id,
        database=faults_database,
    )
    assert rows[0]["n"] == 0


async def test_opening_a_connection_is_bounded_by_the_pool_timeout(
    private_server: PrivatePostgres, faults_database: str, fault_tenant: Tenant
) -> None:
    """A server that accepts TCP connections but never answers (its postmaster stopped): asyncpg's
    own connect timeout is 60 s; the request must get its 503 within the pool timeout instead.
    The pooled connection is busy (a request waits on a lock), so the next one must open another."""
    settings = faults_settings(
        private_server,
        faults_database,
        db_pool_size=1,
        db_max_overflow=1,
        db_pool_timeout_s=1.0,
        db_statement_timeout_ms=20_000,
    )
    pid = int((private_server.data / "postmaster.pid").read_text().split()[0])
    async with api_client(settings) as client:
        assert (await client.get("/v1/products", headers=fault_tenant.headers)).status_code == 200
        async with products_locked(private_server, faults_database):
            holder = asyncio.create_task(client.get("/v1/products", headers=fault_tenant.headers))
            await until_waiting_on_a_lock(private_server, faults_database)
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                stuck = await client.get("/v1/products", headers=fault_tenant.headers)
                waited = time.monotonic() - started
            finally:
                os.kill(pid, signal.SIGCONT)
        held = await holder
        assert stuck.status_code == 503, stuck.text
        assert stuck.headers["Retry-After"]
        assert waited < 1.0 + 9  # the pool timeout, and a generous margin: far from 60 s
        assert held.status_code == 200
        await recovered(client, fault_tenant.headers, within_s=10)
