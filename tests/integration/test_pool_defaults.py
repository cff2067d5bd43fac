"""The default pool opens no connection in a steady load, and an exhausted pool answers 503 in time.

docs/06-operations.md, Connections: an overflow connection is closed as soon as it returns to a
full pool, so defaults with an overflow made every burst above the pool size open and close
connections (a backend process and a login each). The defaults have none: requests beyond the
pool wait for a connection, and one that waits longer than the pool timeout is answered 503 with
Retry-After, never left hanging. And a worker opens its whole pool at startup (the prefill), so
not even the first burst after it starts opens one.
"""

from __future__ import annotations

import asyncio

import httpx
import msgspec
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import Tenant
from tests.support.http import serve

CONCURRENT = 64  # the steady load per worker


async def _app_backends(admin_engine: AsyncEngine) -> set[tuple[int, str]]:
    """The API pool's backends on this test database, as (pid, backend_start): a new pair is a new connection."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT pid, backend_start::text FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'tenantry'"
            )
        )
        return {(int(pid), str(start)) for pid, start in rows}


async def _wave(client: httpx.AsyncClient, tenant: Tenant) -> set[int]:
    """CONCURRENT list requests at once (they interleave: `serve` runs the app in this loop)."""
    answers = await asyncio.gather(
        *(client.get("/v1/products?limit=20", headers=tenant.headers) for _ in range(CONCURRENT))
    )
    return {a.status_code for a in answers}


async def test_steady_load_at_the_defaults_opens_no_connection_after_startup(
    settings: Settings, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    # The defaults of the pool (20, no overflow, 5 s, prefill on): what a deployment gets. The test
    # settings turn the prefill off (tests/support/settings.py); this test is about it.
    defaults = msgspec.structs.replace(settings, db_pool_prefill=True)
    assert defaults.db_max_overflow == 0
    before = await _app_backends(admin_engine)  # the fixtures' engines (provisioning) keep their own
    async with serve(create_app(defaults)) as client:
        started = await _app_backends(admin_engine) - before
        assert len(started) == defaults.db_pool_size  # the whole pool, before any request
        for _ in range(5):  # the first wave included: the same connections serve every wave
            assert await _wave(client, tenant_a) == {200}
            assert await _app_backends(admin_engine) - before == started


async def test_without_prefill_the_pool_opens_its_connections_under_the_first_load(
    fresh_app: Litestar, settings: Settings, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    # TENANTRY_DB_POOL_PREFILL=false: SQLAlchemy's pool opens a connection only when asked for one.
    assert not settings.db_pool_prefill
    before = await _app_backends(admin_engine)
    async with serve(fresh_app) as client:
        assert await _app_backends(admin_engine) == before  # nothing opened at startup
        for _ in range(2):  # warm-up: the pool opens what the load needs, once
            assert await _wave(client, tenant_a) == {200}
        warm = await _app_backends(admin_engine)
        assert 0 < len(warm - before) <= settings.db_pool_size + settings.db_max_overflow
        for _ in range(3):  # then the same connections serve every wave, none opened or closed
            assert await _wave(client, tenant_a) == {200}
            assert await _app_backends(admin_engine) == warm


async def test_an_exhausted_pool_answers_503_with_retry_after(settings: Settings, tenant_a: Tenant) -> None:
    app = create_app(msgspec.structs.replace(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.5))
    async with serve(app) as client:
        # Warm the token cache first: with the only connection taken, the lookup would wait too.
        assert (await client.get("/v1/whoami", headers=tenant_a.headers)).status_code == 200
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))  # the pool's only connection, checked out
            # wait_for bounds the test, not the answer's timing: a hang fails here instead of blocking.
            answer = await asyncio.wait_for(client.get("/v1/products", headers=tenant_a.headers), timeout=60)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["content-type"].startswith("application/problem+json")
        # The connection is back: the next request is served.
        assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
