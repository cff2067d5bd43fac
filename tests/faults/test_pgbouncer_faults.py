"""PgBouncer restarted under load, in front of the private server: the API, connected through it,
answers 503 while it is down and recovers on its own; every tracked write is accounted for
(docs/06-operations.md, "Failure modes")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tenantry.settings import Settings
from tests.faults.conftest import database_of, faults_settings
from tests.faults.harness import (
    PrivatePostgres,
    api_client,
    assert_pool_healthy,
    assert_writes_accounted,
    free_port,
    recovered,
    under_load,
)
from tests.isolation.conftest_pgbouncer import PgBouncer, pgbouncer_binary, restart, start, stop
from tests.support import Tenant

pytestmark = pytest.mark.faults


@pytest.fixture
def bouncer(fault_settings: Settings) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip(
            "PgBouncer is not installed (no `pgbouncer` on PATH or in /usr/sbin): the PgBouncer "
            "restart fault test did NOT run (apt-get install pgbouncer; .ci/run does this when it can)"
        )
    running = start(fault_settings, binary, ports=free_port)
    try:
        yield running
    finally:
        stop(running)


@pytest.mark.parametrize("down_s", [0.0, 1.0])
async def test_pgbouncer_restarted_under_load(
    private_server: PrivatePostgres, fault_settings: Settings, fault_tenant: Tenant, bouncer: PgBouncer, down_s: float
) -> None:
    settings = faults_settings(
        private_server, database_of(fault_settings), app_database_url=bouncer.app_url, db_statement_cache=False
    )
    async with api_client(settings) as client, under_load(client, fault_tenant.headers) as load:
        for _round in range(2):
            await asyncio.to_thread(restart, bouncer, down_s)
            await recovered(client, fault_tenant.headers, within_s=15)
            await assert_pool_healthy(client, fault_tenant.headers)
            before = len(load.tally.acknowledged)
            await load.until(lambda before=before: len(load.tally.acknowledged) >= before + 5)
        tally = await load.stop()
    tally.assert_clean()
    stored = await assert_writes_accounted(private_server, database_of(settings), fault_tenant.id, tally)
    print(
        f"pgbouncer restart (down {down_s} s): {tally.statuses}, {len(stored)} stored, {len(tally.refused)} refused, {len(tally.in_doubt)} in doubt"
    )
