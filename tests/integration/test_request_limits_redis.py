"""Request limits counted in Redis: shared by every app instance, and what happens without Redis.

Runs on a private `redis-server` that the tests start (and stop, to take Redis away mid-run), on
a free port; skipped, saying so, where no redis-server binary is installed.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tenantry.settings import Settings
from tests.support import Tenant
from tests.support.limits import header_items, hold_request, limited_app

PRODUCTS = "/v1/products"
PORTS = range(18300, 18400)


@dataclass
class RedisServer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                answering = client.info("server")["process_id"]
            except redis.ConnectionError:
                pass
            else:
                # Ours, unless another run took the port while it was free.
                if answering != self.process.pid:
                    raise RuntimeError(f"port {self.port} is served by another redis-server (pid {answering})")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for a private Redis")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the limits in Redis are not tested here")
    server = RedisServer(_free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"tenantry-test-{uuid.uuid4().hex[:8]}:"


def busy_slots(server: RedisServer, prefix: str, tenant: Tenant) -> int:
    return int(server.client().zcard(f"{prefix}busy:{{{tenant.id}}}:ws"))


async def test_two_app_instances_share_one_budget(
    settings: Settings, redis_server: RedisServer, prefix: str, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    limits = {"limit_workspace_requests": 4, "limit_workspace_window_s": 60}
    shared = {"redis_url": redis_server.url, "redis_key_prefix": prefix}
    async with (
        limited_app(settings, **shared, **limits) as (_, one),
        limited_app(settings, **shared, **limits) as (
            _,
            two,
        ),
    ):
        statuses = [
            (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code for client in (one, two, one, two)
        ]
        assert statuses == [200, 200, 200, 200]
        refused = [await client.get(PRODUCTS, headers=tenant_a.headers) for client in (one, two)]
        assert [r.status_code for r in refused] == [429, 429]
        assert refused[1].json()["violated_policies"] == ["workspace"]
        # Workspace B has a budget of its own, in both instances.
        assert [(await c.get(PRODUCTS, headers=tenant_b.headers)).status_code for c in (one, two)] == [200, 200]


async def test_a_large_page_costs_the_same_in_redis_as_in_memory(
    settings: Settings, redis_server: RedisServer, prefix: str, tenant_a: Tenant
) -> None:
    limits = {"limit_workspace_requests": 12, "limit_workspace_window_s": 60}
    async with limited_app(settings, redis_url=redis_server.url, redis_key_prefix=prefix, **limits) as (_, client):
        heavy = [await client.get(PRODUCTS, params={"limit": 100}, headers=tenant_a.headers) for _ in range(3)]
    assert [a.status_code for a in heavy] == [200, 200, 429]
    assert [header_items(a.headers["RateLimit"])["workspace"]["r"] for a in heavy[:2]] == ["7", "2"]
    assert heavy[2].json()["violated_policies"] == ["workspace"]


async def test_slots_in_flight_count_across_instances_and_are_released(
    settings: Settings, redis_server: RedisServer, prefix: str, tenant_a: Tenant
) -> None:
    shared = {"redis_url": redis_server.url, "redis_key_prefix": prefix, "limit_workspace_concurrency": 1}
    async with limited_app(settings, **shared) as (app_one, one), limited_app(settings, **shared) as (app_two, two):
        held = await hold_request(app_one, tenant_a)
        refused = await two.get(PRODUCTS, headers=tenant_a.headers)
        assert refused.status_code == 429
        assert refused.json()["violated_policies"] == ["workspace-concurrency"]
        assert busy_slots(redis_server, prefix, tenant_a) == 1
        assert await held.finish() == 201
        await app_one.state.limits.store.redis.flush()
        assert busy_slots(redis_server, prefix, tenant_a) == 0
        assert (await two.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        await app_two.state.limits.store.redis.flush()  # else it rides on two's next admission (or 5 ms)
        # An error and a client hanging up give their slot back too.
        assert (await one.get(f"{PRODUCTS}/{uuid.uuid4()}", headers=tenant_a.headers)).status_code == 404
        held = await hold_request(app_one, tenant_a)
        await held.hang_up()
        held = await hold_request(app_one, tenant_a)
        held.task.cancel()
        await asyncio.gather(held.task, return_exceptions=True)
        await app_one.state.limits.store.redis.flush()
        assert busy_slots(redis_server, prefix, tenant_a) == 0
        assert (await two.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200


async def test_a_release_rides_on_the_next_admission(
    settings: Settings, redis_server: RedisServer, prefix: str, tenant_a: Tenant
) -> None:
    """One round trip per request: the slot of a finished request goes back with the next one's."""
    shared = {"redis_url": redis_server.url, "redis_key_prefix": prefix, "limit_workspace_concurrency": 1}
    async with limited_app(settings, **shared) as (app, client):
        store = app.state.limits.store.redis
        store.flush_s = 3600.0  # no idle flush during this test
        for _ in range(3):
            assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        assert busy_slots(redis_server, prefix, tenant_a) == 1  # the last one's, queued
        assert len(store._pending) == 2  # one slot per policy (workspace, token)
        store.flush_s = 0.0
        await store.flush()
        assert busy_slots(redis_server, prefix, tenant_a) == 0


async def test_without_redis_each_process_still_limits_and_serves(
    settings: Settings, prefix: str, tenant_a: Tenant
) -> None:
    with socket.socket() as closed:  # a port that refuses connections: Redis is down
        closed.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    async with limited_app(settings, redis_url=dead, limit_token_requests=2, limit_token_window_s=60) as (app, client):
        statuses = [(await client.get(PRODUCTS, headers=tenant_a.headers)).status_code for _ in range(3)]
        store = app.state.limits.store
        assert statuses == [200, 200, 429]  # fail open to this process's own counts, not to no limits
        assert store.failovers >= 1
        assert not store.using_redis


async def test_redis_going_away_mid_run_keeps_serving_and_sharing_resumes(
    settings: Settings, redis_server: RedisServer, prefix: str, tenant_a: Tenant
) -> None:
    limits = {"limit_token_requests": 1000, "limit_token_window_s": 60}
    async with limited_app(settings, redis_url=redis_server.url, redis_key_prefix=prefix, **limits) as (app, client):
        store = app.state.limits.store
        store.retry_s = 0.2
        first = await client.get(PRODUCTS, headers=tenant_a.headers)
        assert header_items(first.headers["RateLimit"])["token"]["r"] == "999"
        redis_server.stop()
        try:
            during = [(await client.get(PRODUCTS, headers=tenant_a.headers)).status_code for _ in range(5)]
            assert during == [200] * 5
            assert store.failovers >= 1
        finally:
            redis_server.start()  # an empty Redis: the shared counts start again
        # Back in Redis within a few retries (the first may meet a pooled connection that died).
        key = f"{prefix}rate:{{{tenant_a.id}}}:tok:{tenant_a.workspace.token_id}"
        for _ in range(20):
            await asyncio.sleep(store.retry_s)
            assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
            if redis_server.client().exists(key):
                break
        assert redis_server.client().exists(key)
