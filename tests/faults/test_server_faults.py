"""Backends killed and the server restarted under load: 503 while it lasts, never a 500, no
acknowledged write lost, no refused write stored, and recovery without restarting the API
(docs/06-operations.md, "Failure modes")."""

from __future__ import annotations

import asyncio

import pytest

from tenantry.settings import Settings
from tests.faults.conftest import database_of
from tests.faults.harness import (
    PrivatePostgres,
    api_client,
    assert_pool_healthy,
    assert_writes_accounted,
    recovered,
    terminate_app_backends,
    under_load,
)
from tests.support import Tenant

pytestmark = pytest.mark.faults


async def test_backends_killed_mid_request_give_503_and_the_pool_recovers(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant
) -> None:
    database = database_of(fault_settings)
    async with api_client(fault_settings) as client, under_load(client, fault_tenant.headers) as load:
        recoveries = []
        for _round in range(3):
            killed = await terminate_app_backends(private_server, database)
            assert killed > 0
            recoveries.append(await recovered(client, fault_tenant.headers, within_s=5))
            await assert_pool_healthy(client, fault_tenant.headers)
            before = len(load.tally.acknowledged)
            await load.until(lambda before=before: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    stored = await assert_writes_accounted(private_server, database, fault_tenant.id, tally)
    print(f"kills: {tally.statuses}, {len(stored)} writes stored, {len(tally.refused)} refused, recovery {recoveries}")


@pytest.mark.parametrize("how", ["fast", "slow"])
async def test_a_server_restart_gives_503_then_recovery_without_restarting_the_api(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant, how: str
) -> None:
    database = database_of(fault_settings)
    async with api_client(fault_settings) as client, under_load(client, fault_tenant.headers) as load:
        if how == "fast":
            await asyncio.to_thread(private_server.restart, "fast")
        else:
            await asyncio.to_thread(private_server.stop, "fast")
            refused_before = len(load.tally.refused)
            # Down for a while: every request meanwhile is a 503.
            await load.until(lambda: len(load.tally.refused) >= refused_before + 20)
            await asyncio.to_thread(private_server.start)
        await recovered(client, fault_tenant.headers, within_s=15)
        await assert_pool_healthy(client, fault_tenant.headers)
        before = len(load.tally.acknowledged)
        await load.until(lambda: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    assert tally.statuses[503] > 0 if how == "slow" else True
    stored = await assert_writes_accounted(private_server, database, fault_tenant.id, tally)
    print(
        f"restart {how}: {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused, {len(tally.in_doubt)} in doubt"
    )


LOSE_THE_COMMIT = """
CREATE FUNCTION public.faults_lose_the_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_terminate_backend(pg_backend_pid());
    RETURN NULL;
END
$$
"""


async def test_a_connection_lost_during_commit_is_answered_in_doubt_and_a_keyed_retry_settles_it(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant
) -> None:
    database = database_of(fault_settings)
    # A deferred constraint trigger runs inside COMMIT: ending its own backend there breaks the
    # connection exactly while COMMIT is in flight, which no load test can time on purpose.
    await private_server.sql(LOSE_THE_COMMIT, database=database)
    await private_server.sql(
        "CREATE CONSTRAINT TRIGGER faults_lose_the_commit AFTER INSERT ON public.products "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.faults_lose_the_commit()",
        database=database,
    )
    plain = {"name": "Doubt", "price_cents": 100, "currency": "EUR", "sku": "D-plain"}
    keyed = {"name": "Doubt", "price_cents": 100, "currency": "EUR", "sku": "D-keyed"}
    keyed_headers = {**fault_tenant.headers, "Idempotency-Key": "faults-doubt"}
    try:
        async with api_client(fault_settings) as client:
            for body, headers in ((plain, fault_tenant.headers), (keyed, keyed_headers)):
                response = await client.post("/v1/products", json=body, headers=headers)
                assert response.status_code == 503, response.text
                assert response.json()["type"].endswith("/commit-outcome-unknown"), response.text
                assert response.headers.get("Retry-After")
            await private_server.sql("DROP TRIGGER faults_lose_the_commit ON public.products", database=database)
            retried = await client.post("/v1/products", json=keyed, headers=keyed_headers)
            assert retried.status_code == 201, retried.text
    finally:
        await private_server.sql("DROP TRIGGER IF EXISTS faults_lose_the_commit ON public.products", database=database)
        await private_server.sql("DROP FUNCTION IF EXISTS public.faults_lose_the_commit()", database=database)
    rows = await private_server.sql(
        "SELECT sku, count(*) AS n FROM products WHERE tenant_id = $1 AND sku LIKE 'D-%' GROUP BY sku",
        fault_tenant.id,
        database=database,
    )
    # Here the server ended the backend before the commit record, so the plain write is absent; the
    # keyed one exists exactly once after its retry.
    assert {row["sku"]: row["n"] for row in rows} == {"D-keyed": 1}
