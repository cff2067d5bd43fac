"""Why a connection to PostgreSQL failed, in one line an operator can act on.

Every command (`tenantry dev`, `serve`, `db upgrade`, `admin`, `audit`, `probe`, `seed`) reports
connection failures through `describe_connection_error`, and the ones that would otherwise change
something first call `check_connection` before their first side effect. The driver's own text is
kept where it says something useful (the server's message names the role or the database); the
traceback never reaches the console.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from tenantry.db.engine import create_engine
from tenantry.settings import Settings, to_asyncpg_url

CONNECT_TIMEOUT_S = 10.0
# Password authentication failed, or no pg_hba.conf entry / role cannot log in.
_AUTH_CODES = {"28P01": "wrong password", "28000": "login refused"}
_SQLSTATE_HINTS = {
    "3D000": "the database does not exist: create it (or let `tenantry dev` create it)",
    "53300": "the server has no free connection slot (max_connections): retry, or raise the limit",
    "57P03": "the server is starting up or shutting down: retry in a moment",
    # Not connection failures, but what a command meets on a database that was never migrated.
    "42P01": "the schema is missing or older than this version: run `tenantry db upgrade`",
    "42883": "the schema is missing or older than this version: run `tenantry db upgrade`",
}


class DatabaseUnreachable(Exception):
    """A connection could not be made; `str()` is the one line to show."""


def _where(url: URL | None) -> str:
    if url is None:
        return "PostgreSQL"
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str):
        place = f"{socket_dir} (Unix socket)"
    else:
        place = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL at {place}, database {url.database or '(default)'!r}, role {url.username or '(default)'!r}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped, and what each was raised from."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def describe_connection_error(exc: BaseException, url: URL | None = None) -> str | None:
    """One line saying why connecting failed, or None when `exc` is not a connection failure."""
    where = _where(url)
    for cause in _causes(exc):
        code = getattr(cause, "sqlstate", None)
        if isinstance(cause, asyncpg.PostgresError) and isinstance(code, str):
            message = _first_line(cause)
            if code in _AUTH_CODES:
                hint = _AUTH_CODES[code]
                if "no encryption" in message:  # pg_hba.conf has only hostssl lines for us
                    return f"{where}: {message} (the server wants TLS: add ?sslmode=require to the URL)"
                return f"{where}: {hint}: {message} (check the URL's role and password, and pg_hba.conf)"
            if code in _SQLSTATE_HINTS:
                return f"{where}: {message} ({_SQLSTATE_HINTS[code]})"
            if code.startswith("08"):
                return f"{where}: connection failed: {message}"
            if code.startswith("28"):
                return f"{where}: login refused: {message}"
            return None  # a server error after connecting: not ours to describe
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return f"{where}: TLS failed: {_first_line(cause)} (check sslmode and the server's certificate)"
        if isinstance(cause, ConnectionError) and "ssl" in str(cause).lower():
            # asyncpg: 'PostgreSQL server at "host:port" rejected SSL upgrade'.
            return f"{where}: the server does not accept TLS, but the URL asks for it (sslmode): {_first_line(cause)}"
        if isinstance(cause, socket.gaierror):
            return f"{where}: the host name does not resolve ({_first_line(cause)})"
        if isinstance(cause, ConnectionRefusedError):
            return f"{where}: connection refused (is the server running, and listening on that address?)"
        if isinstance(cause, FileNotFoundError) and url is not None and url.query.get("host"):
            return f"{where}: no server socket there (is the server running?)"
        if isinstance(cause, TimeoutError | asyncio.TimeoutError):
            return f"{where}: no answer within {CONNECT_TIMEOUT_S:g} s (a firewall, or the wrong port?)"
        if isinstance(cause, PoolTimeoutError):
            return f"{where}: no free connection in the pool"
        if isinstance(cause, asyncpg.InterfaceError) and "connection" in str(cause).lower():
            return f"{where}: connection failed: {_first_line(cause)}"
        if isinstance(cause, OSError) and cause.errno is not None:
            return f"{where}: cannot connect: {cause.strerror or _first_line(cause)}"
    if isinstance(exc, InterfaceError | DBAPIError) and exc.connection_invalidated:
        return f"{where}: the connection was lost"
    return None


def database_failure(exc: BaseException, url: URL | None = None) -> str:
    """`describe_connection_error`, or the driver's first line for any other database error."""
    if (message := describe_connection_error(exc, url)) is not None:
        return message
    cause = getattr(exc, "orig", None) or exc
    return f"database error: {_first_line(cause)}"


async def check_connection(url: URL | str, settings: Settings, *, query: str = "SELECT 1") -> object:
    """Connect once to `url` with the engine's own options (TLS mode, statement cache), run `query`
    and return its value; raise `DatabaseUnreachable` with the one-line reason if that fails."""
    parsed = to_asyncpg_url(url)
    engine = create_engine(parsed, settings, pool_size=1, connect_timeout_s=CONNECT_TIMEOUT_S)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(query))).scalar()
    except Exception as exc:
        message = describe_connection_error(exc, parsed)
        if message is None:
            raise
        raise DatabaseUnreachable(message) from None
    finally:
        await engine.dispose()
