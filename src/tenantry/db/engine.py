"""The asyncpg engine every part of Tenantry connects with."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tenantry.core.metrics import Metrics
from tenantry.settings import Settings, to_asyncpg_url

log = logging.getLogger("tenantry.db.engine")

TOOL_OVERFLOW = 4
# Engines whose every statement and error someone watches through SQLAlchemy's events (metrics,
# tracing): reads that could go straight to the driver go through SQLAlchemy there instead.
_OBSERVED: weakref.WeakSet[Engine] = weakref.WeakSet()


def observe_statements(engine: AsyncEngine) -> None:
    """Say that `engine`'s statement and error events have listeners that must see every statement."""
    _OBSERVED.add(engine.sync_engine)


def statements_observed(engine: AsyncEngine) -> bool:
    return engine.sync_engine in _OBSERVED


def create_engine(
    url: URL,
    settings: Settings,
    *,
    pool_size: int | None = None,
    connect_timeout_s: float | None = None,
    metrics: Metrics | None = None,
) -> AsyncEngine:
    """An asyncpg engine; with the statement cache off it also works behind PgBouncer < 1.21.

    TLS is attempted only when the URL asks for it: `url` comes from settings.to_asyncpg_url,
    which always carries the mode (`disable` unless the URL said `sslmode=...`).

    Opening a connection is bounded by the pool timeout unless `connect_timeout_s` says otherwise:
    a server that accepts the TCP connection but never answers (stopped, overloaded, a half-open
    network path) gives a 503 within the wait a client was promised, not after asyncpg's 60 s.
    """
    connect_args: dict[str, Any] = {
        "server_settings": {"application_name": "tenantry"},
        # A client-side bound on every statement, including the token lookup that runs before the
        # transaction-local statement_timeout is set: a stuck server gives a 503, not a hang.
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
    }
    connect_args["timeout"] = settings.db_pool_timeout_s if connect_timeout_s is None else connect_timeout_s
    if not settings.db_statement_cache:
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0  # SQLAlchemy's own cache of prepared statements
        # No prepared_statement_name_func: with both caches off asyncpg uses the unnamed statement,
        # re-parsed with every execution and replaced by the next one, so nothing is left on
        # PgBouncer's server connections. Uniquely named statements were never closed on the server
        # connection that held them: hundreds piled up on each one within seconds.
    extra: dict[str, Any] = {} if metrics is None else {"poolclass": metrics.pool_class()}
    engine = create_async_engine(
        to_asyncpg_url(url),
        pool_size=pool_size or settings.db_pool_size,
        # A tool's engine (an explicit small `pool_size`: admin CLI, probe, seed) may need a second
        # connection beside a long one (the export's snapshot); its few connections churn nobody.
        max_overflow=settings.db_max_overflow if pool_size is None else max(settings.db_max_overflow, TOOL_OVERFLOW),
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=1800,
        connect_args=connect_args,
        **extra,
    )
    event.listen(engine.sync_engine, "handle_error", _refused_connection_is_unavailable)
    if metrics is not None:
        metrics.watch_engine(engine)
        observe_statements(engine)  # the error counter listens to handle_error
    return engine


def _refused_connection_is_unavailable(context: ExceptionContext) -> None:
    """A server error while opening a connection marks the database unavailable (docs/06-operations.md).

    Whatever the SQLSTATE the server refuses a new connection with (55000 while the database has
    ALLOW_CONNECTIONS false, 57P03 while it starts or stops, 53300 with no free slot, 3D000, 28xxx),
    no statement of the request ran: every such request answers 503, like a lost connection, and
    not 503 for the first and 500 for the next ones.
    """
    if context.connection is None and not context.is_pre_ping:
        context.is_disconnect = True


async def fill_pool(engine: AsyncEngine, size: int, timeout_s: float) -> int:
    """Open `size` connections of `engine`'s pool at once, give them back, and say how many opened.

    SQLAlchemy's pool opens connections only when asked for one: without this, the first burst of
    requests after a worker starts pays for up to `size` new backends (docs/06-operations.md,
    Connections). Each connection is held until all are open, or the pool would hand back the same
    one. A database that refuses or does not answer within `timeout_s` costs one warning and no
    failure: what did open stays in the pool, and the rest open on demand as before.
    """
    opening = [asyncio.ensure_future(_connect(engine)) for _ in range(size)]
    try:
        await asyncio.wait(opening, timeout=timeout_s)
    finally:
        # Shielded, in a task of its own: a second cancellation of the caller (shutdown during
        # startup) must not leave a connection checked out of the pool.
        release = asyncio.ensure_future(_give_back(opening))
        _RELEASING.add(release)
        release.add_done_callback(_RELEASING.discard)
        opened, error = await asyncio.shield(release)
    if opened < size:
        # asyncpg's own connect timeout is the same as ours: either may end a silent server's wait.
        if error is None or isinstance(error, TimeoutError):
            why = f"no answer within {timeout_s:g} s"
        else:
            why = _one_line(error)
        log.warning("opened %d of %d pooled connections at startup, the rest open on demand: %s", opened, size, why)
    return opened


# The releases in flight, referenced until done (the event loop keeps only weak references to tasks).
_RELEASING: set[asyncio.Future[tuple[int, BaseException | None]]] = set()


def _one_line(error: BaseException) -> str:
    # SQLAlchemy appends a second line (a link to its docs) to the driver's message.
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    return await engine.connect()


async def _give_back(opening: Sequence[asyncio.Future[AsyncConnection]]) -> tuple[int, BaseException | None]:
    """Stop the connections still opening, return every opened one to the pool; the error that
    says most (a refusal rather than a timeout), if any."""
    for future in opening:
        future.cancel()  # no effect on one that has finished
    outcomes = await asyncio.gather(*opening, return_exceptions=True)
    opened, errors = 0, []
    for outcome in outcomes:
        if isinstance(outcome, AsyncConnection):
            opened += 1
            await outcome.close()  # back to the pool, still open
        elif not isinstance(outcome, asyncio.CancelledError):
            errors.append(outcome)
    errors.sort(key=lambda error: isinstance(error, TimeoutError))  # stable: the first refusal first
    return opened, errors[0] if errors else None
