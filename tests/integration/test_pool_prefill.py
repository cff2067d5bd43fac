"""A worker opens its whole pool at startup, and a database that is down does not stop it starting.

db/engine.py, fill_pool; docs/06-operations.md, Connections. What opened stays in the pool, nothing
stays checked out (timeout and cancellation included), and the pool gauges read as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from tenantry.app import create_app
from tenantry.core.metrics import Metrics
from tenantry.db.engine import create_engine, fill_pool
from tenantry.settings import Settings
from tests.support.http import serve

LOGGER = "tenantry.db.engine"


class HeldBackProxy:
    """A TCP proxy to the test server that forwards its first `forward` connections and accepts
    every later one without ever answering: a database that serves some and hangs the rest."""

    def __init__(self, host: str, port: int, forward: int) -> None:
        self.target = (host, port)
        self.forward = forward
        self.accepted = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        if self.accepted > self.forward:
            return  # held: open, silent
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers.append(upstream_writer)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HeldBackProxy]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            for pipe in list(self._pipes):
                pipe.cancel()
            await asyncio.gather(*self._pipes, return_exceptions=True)
            await server.wait_closed()


def _server_of(settings: Settings) -> tuple[str, int]:
    url = make_url(settings.database_url)
    if not url.host or url.query.get("host"):
        pytest.skip("the test server is not reached over TCP: no proxy in front of it")
    return url.host, url.port or 5432


def _through(settings: Settings, port: int, **changes: Any) -> Settings:
    """Settings whose API connections go to 127.0.0.1:`port` (the auth listener still reaches the server)."""
    url = settings.app_url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    return msgspec.structs.replace(settings, app_database_url=url, db_pool_prefill=True, **changes)


def _gauges(app: Litestar) -> dict[str, float | None]:
    metrics: Metrics = app.state.metrics
    names = ("size", "connections_in_use", "overflow", "waiting")
    return {name: metrics.registry.get_sample_value(f"tenantry_db_pool_{name}") for name in names}


def _pool(app: Litestar) -> QueuePool:
    pool = app.state.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


async def test_a_worker_opens_its_whole_pool_before_the_first_request(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(msgspec.structs.replace(settings, db_pool_prefill=True, db_pool_size=4, metrics=True))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        async with serve(app):
            pool = _pool(app)
            assert (pool.checkedin(), pool.checkedout()) == (4, 0)
            assert _gauges(app) == {"size": 4, "connections_in_use": 0, "overflow": 0, "waiting": 0}
    assert _warnings(caplog) == []


@pytest.mark.parametrize("forward", [0, 2], ids=["none answers", "two of five answer"])
async def test_what_opened_in_time_stays_in_the_pool_and_nothing_stays_checked_out(
    settings: Settings, caplog: pytest.LogCaptureFixture, forward: int
) -> None:
    async with HeldBackProxy(*_server_of(settings), forward=forward).running() as proxy:
        held_back = _through(settings, proxy.port, db_pool_size=5, db_pool_timeout_s=1.0, metrics=True)
        app = create_app(held_back)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            started = time.monotonic()
            async with serve(app) as client:
                startup_s = time.monotonic() - started
                assert (await client.get("/health/live")).status_code == 200
                pool = _pool(app)
                assert (pool.checkedin(), pool.checkedout()) == (forward, 0)
                gauges = _gauges(app)
                assert gauges == {"size": 5, "connections_in_use": 0, "overflow": 0, "waiting": 0}
    assert startup_s < held_back.db_pool_timeout_s + 2  # bounded by the pool timeout, not asyncpg's 60 s
    [warning] = _warnings(caplog)
    assert f"opened {forward} of 5 pooled connections" in warning


async def test_an_unreachable_database_logs_one_warning_and_the_worker_serves(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    closed_port = _through(settings, 1, db_pool_size=3)  # nothing listens on port 1
    app = create_app(closed_port)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        started = time.monotonic()
        async with serve(app) as client:
            assert time.monotonic() - started < closed_port.db_pool_timeout_s + 2
            assert (await client.get("/health/live")).status_code == 200
            assert (await client.get("/health/ready")).status_code == 503
            assert _pool(app).checkedout() == 0
    [warning] = _warnings(caplog)
    assert "opened 0 of 3 pooled connections" in warning
    assert "\n" not in warning


async def test_a_refusing_database_names_its_reason(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # The server answers, and refuses the login (SQLSTATE 3D000; the test server may trust passwords).
    missing = settings.app_url.set(database="tenantry_no_such_database").render_as_string(hide_password=False)
    refused = msgspec.structs.replace(settings, app_database_url=missing, db_pool_prefill=True, db_pool_size=3)
    app = create_app(refused)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        async with serve(app) as client:
            assert (await client.get("/health/live")).status_code == 200
    [warning] = _warnings(caplog)
    assert "opened 0 of 3 pooled connections" in warning
    assert 'database "tenantry_no_such_database" does not exist' in warning
    assert settings.app_password not in warning


async def test_a_cancelled_fill_gives_back_what_it_opened(settings: Settings) -> None:
    async with HeldBackProxy(*_server_of(settings), forward=2).running() as proxy:
        held_back = _through(settings, proxy.port, db_pool_size=5)
        engine = create_engine(held_back.app_url, held_back)
        checked_out: list[object] = []
        two_open = asyncio.Event()

        def on_checkout(*args: object) -> None:
            checked_out.append(args)
            if len(checked_out) == 2:
                two_open.set()

        event.listen(engine.sync_engine, "checkout", on_checkout)
        try:
            filling = asyncio.ensure_future(fill_pool(engine, 5, timeout_s=60))
            await asyncio.wait_for(two_open.wait(), timeout=30)  # two held, three still opening
            filling.cancel()  # a shutdown while the worker starts
            with pytest.raises(asyncio.CancelledError):
                await filling
            pool = engine.sync_engine.pool
            assert isinstance(pool, QueuePool)
            assert (pool.checkedin(), pool.checkedout()) == (2, 0)
        finally:
            await engine.dispose()
