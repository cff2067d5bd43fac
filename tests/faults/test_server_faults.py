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
    print(f"restart {how}: {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused")
