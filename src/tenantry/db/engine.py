"""The asyncpg engine every part of Tenantry connects with."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.core.metrics import Metrics
from tenantry.settings import Settings, to_asyncpg_url


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
    """
    connect_args: dict[str, Any] = {
        "server_settings": {"application_name": "tenantry"},
        # A client-side bound on every statement, including the token lookup that runs before the
        # transaction-local statement_timeout is set: a stuck server gives a 503, not a hang.
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
    }
    if connect_timeout_s is not None:
        connect_args["timeout"] = connect_timeout_s
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
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=1800,
        connect_args=connect_args,
        **extra,
    )
    if metrics is not None:
        metrics.watch_engine(engine)
    return engine
