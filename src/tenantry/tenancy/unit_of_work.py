"""One transaction as this session's role and the current tenant (docs/03-architecture.md).

Every service method that touches the database runs its work inside `UnitOfWork.transaction()`:

- it begins the session's transaction, so the session hook (tenancy/session.py) sets role, tenant,
  user and statement timeout before any statement of the work;
- it commits explicitly when the block ends, inside the service method: a failed commit is an
  exception there, and becomes an error answer, never a 2xx;
- it turns a unique violation (23505) into `Conflict` and a foreign-key violation (23503) into
  `NotFound`, with the message the service chooses for each (`unique=`, `foreign_key=`), so no
  service catches `IntegrityError` itself.

One exception to "commits when the block ends": a session may carry a *commit owner*
(`COMMIT_OWNER_KEY` in its `info`), set by the idempotency layer for a request sent with an
Idempotency-Key. Then the first unit leaves its transaction open for the owner, which stores the
answer in the same transaction and commits both at once (http/idempotency.py); later units of the
same request run as savepoints inside it. The owner is told when the transaction begins, so it can
lock what it will store before the work runs.

The rare transaction that changes roles half-way (invitation acceptance: tenant, platform, tenant;
the leak report: the login role, then the platform role) says so with `become`.

Reads that only go to the wire (a product page, a product by id) take `tenant_reads` instead, and
a product's create `tenant_writes`: a transaction of its own on a pooled connection of the
sessions' engine, started by the tenant statement (tenancy/session.py), with no ORM session, no
identity map and no unit-of-work flush. Its compiled Core statements run straight on asyncpg's
connection (through SQLAlchemy's connection when metrics or tracing watch every statement). RLS
still decides what they see; nothing is kept between transactions but the compiled SQL text of
each statement's shape (docs/03-architecture.md, "Reads and creates without a session").
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.util import greenlet_spawn

from tenantry.core.errors import CommitOutcomeUnknown, Conflict, DomainError, NotFound
from tenantry.core.sqlstate import FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate_of
from tenantry.db.engine import statements_observed
from tenantry.tenancy.session import (
    DEFAULT_STATEMENT_TIMEOUT_MS,
    SESSION_ROLE_KEY,
    STATEMENT_TIMEOUT_KEY,
    set_scope_context,
    set_transaction_context,
)

COMMIT_OWNER_KEY = "tenantry_commit_owner"

# The same answers the problem layer gives a violation nobody named (docs/05-api-guide.md, Errors).
DEFAULT_UNIQUE = Conflict("The request conflicts with an existing resource.")
DEFAULT_FOREIGN_KEY = NotFound("The resource was not found.")


class CommitOwner(Protocol):
    """Who commits a session's transaction instead of its units of work (the idempotency layer)."""

    async def began(self, session: AsyncSession) -> None:
        """The transaction has begun (the tenant is set); called before the work's first statement."""


COMMIT_LOST = (
    "The connection to the database was lost while the change was being committed: it may or may not"
    " have been saved. Retry with the same Idempotency-Key, or read before writing again."
)


def _outcome_unknown(exc: BaseException) -> bool:
    """A COMMIT that failed without the server saying so: it may have committed all the same."""
    if isinstance(exc, DBAPIError):
        code = sqlstate_of(exc)
        return exc.connection_invalidated or code is None or code[:2] in ("08", "57")
    return isinstance(exc, (OSError, TimeoutError))


async def commit(session: AsyncSession) -> None:
    """Commit the session's transaction; a lost connection during COMMIT is `CommitOutcomeUnknown`.

    The server may have committed before the connection dropped, so the answer must not claim
    that nothing was written (docs/06-operations.md, failure modes). A COMMIT the server refused
    (a deferred constraint, a serialization failure) is raised as it is.
    """
    try:
        await session.commit()
    except Exception as exc:
        if _outcome_unknown(exc):
            raise CommitOutcomeUnknown(COMMIT_LOST) from exc
        raise


class UnitOfWork:
    """Transactions of one session: begin, commit (or hand over), and violations as domain errors."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @asynccontextmanager
    async def transaction(
        self, *, unique: DomainError | None = None, foreign_key: DomainError | None = None
    ) -> AsyncIterator[AsyncSession]:
        """Run the block as one transaction; raise `unique` / `foreign_key` for those violations."""
        try:
            owner: CommitOwner | None = self.session.info.get(COMMIT_OWNER_KEY)
            if owner is None:
                await self.session.begin()
                try:
                    yield self.session
                    await self.session.flush()  # violations surface here, before COMMIT is sent
                except BaseException:
                    await self.session.rollback()
                    raise
                await commit(self.session)
            elif self.session.in_transaction():
                # A later unit of a request whose answer commits with its work: a savepoint, so a
                # failure here undoes this unit only, as its own transaction would have.
                async with self.session.begin_nested():
                    yield self.session
            else:
                await self.session.begin()
                try:
                    await owner.began(self.session)
                    yield self.session
                    await self.session.flush()  # violations surface here, inside the service
                except BaseException:
                    await self.session.rollback()
                    raise
        except IntegrityError as exc:
            if (violation := _violation(exc, unique, foreign_key)) is not None:
                raise violation from None
            raise

    async def become(self, role: str, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None) -> None:
        """Switch the open transaction to `role` and `tenant_id` (SET LOCAL ROLE and the tenant).

        Only for the few operations that must cross roles within one transaction; the switch
        lasts until the next switch or the end of the transaction.
        """
        if not self.session.in_transaction():
            raise RuntimeError("become() needs an open transaction")
        await set_transaction_context(
            self.session,
            role=role,
            tenant_id=tenant_id,
            user_id=user_id,
            statement_timeout_ms=self.session.info.get(STATEMENT_TIMEOUT_KEY, DEFAULT_STATEMENT_TIMEOUT_MS),
            switched=True,
        )


class NamedRow(Protocol):
    """A row whose columns are read by name: `row["price_cents"]` (SQLAlchemy's or asyncpg's)."""

    def __getitem__(self, name: str, /) -> Any: ...


class TenantStatements(Protocol):
    """The statements of one `tenant_reads` / `tenant_writes` transaction; `parameters` fill the
    statement's `bindparam`s."""

    async def rows(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> Sequence[NamedRow]: ...

    async def first(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> NamedRow | None: ...

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> None: ...


TenantReads = TenantStatements


class _CoreStatements:
    """On SQLAlchemy's connection: its events fire (a span per statement, error counts)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def rows(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> Sequence[NamedRow]:
        return (await self.connection.execute(statement, parameters)).mappings().all()

    async def first(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> NamedRow | None:
        return (await self.connection.execute(statement, parameters)).mappings().first()

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> None:
        await self.connection.execute(statement, parameters)


# Compiled SQL per dialect and statement shape (SQLAlchemy's cache key: the structure without the
# values). Text and parameter names only, never a value: those come from each statement's key.
_COMPILED: weakref.WeakKeyDictionary[Dialect, dict[Any, Compiled]] = weakref.WeakKeyDictionary()
_MAX_COMPILED = 500


def positional(
    statement: Executable, dialect: Dialect, values: Mapping[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """`statement` as the driver's SQL ($1, $2 ...) and its arguments in order (`values` fill its
    `bindparam`s), compiled once per shape, with the types' bind processing SQLAlchemy applies."""
    key = statement._generate_cache_key()  # type: ignore[attr-defined]
    if key is None:  # a statement SQLAlchemy cannot cache: compiled every time, as SQLAlchemy would
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        parameters = compiled.construct_params(params=values)
    else:
        cache = _COMPILED.setdefault(dialect, {})
        compiled = cache.get(key.key)
        if compiled is None:
            compiled = statement.compile(dialect=dialect, cache_key=key)  # type: ignore[attr-defined]
            if compiled.literal_execute_params or compiled.post_compile_params:
                # Expanding IN lists are rendered per execution by SQLAlchemy only.
                raise ValueError("tenant_reads runs statements without post-compile parameters only")
            if len(cache) >= _MAX_COMPILED:
                cache.clear()
            cache[key.key] = compiled
        parameters = compiled.construct_params(params=values, extracted_parameters=key.bindparams)
    processors = compiled._bind_processors
    return str(compiled), [
        processor(parameters[name]) if (processor := processors.get(name)) else parameters[name]
        for name in compiled.positiontup or ()
    ]


class _DriverStatements:
    """On asyncpg's connection itself: no greenlet hop, execution context or result adaptation."""

    def __init__(self, driver: asyncpg.Connection, dialect: Dialect) -> None:
        self.driver = driver
        self.dialect = dialect

    async def rows(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> Sequence[NamedRow]:
        sql, arguments = positional(statement, self.dialect, parameters)
        return await self.driver.fetch(sql, *arguments)

    async def first(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> NamedRow | None:
        sql, arguments = positional(statement, self.dialect, parameters)
        return await self.driver.fetchrow(sql, *arguments)

    async def execute(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> None:
        sql, arguments = positional(statement, self.dialect, parameters)
        await self.driver.execute(sql, *arguments)


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def _as_dbapi_error(exc: BaseException, driver: asyncpg.Connection) -> BaseException:
    """A driver error as SQLAlchemy raises it, so the unit of work and the problem layer treat it as
    any statement's: a violation by its SQLSTATE, a timeout or a lost connection as a 503 ... A
    client-side failure of a connection (closed, or left mid-operation) counts as a lost one."""
    if not isinstance(exc, _DRIVER_ERRORS):
        return exc
    lost = driver.is_closed() or isinstance(exc, asyncpg.InternalClientError)
    error = DBAPIError(None, None, exc, connection_invalidated=lost)
    error.__cause__ = exc
    return error


@asynccontextmanager
async def tenant_reads(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[TenantStatements]:
    """One read-only transaction as `sessions`' role and the current tenant, without an ORM session.

    On a connection of their engine, begun with the statement their hook runs (role, tenant, user,
    statement timeout), committed when the block ends; a connection that comes out of it still in
    a transaction, or broken, is discarded, never returned to the pool.
    """
    engine, info = sessions.kw.get("bind"), sessions.kw.get("info") or {}
    role = info.get(SESSION_ROLE_KEY)
    if not role or not isinstance(engine, AsyncEngine):
        raise RuntimeError("tenant_reads needs the factory of a TenantSession bound to an engine")
    timeout_ms: int = info.get(STATEMENT_TIMEOUT_KEY, DEFAULT_STATEMENT_TIMEOUT_MS)
    if statements_observed(engine):
        async with engine.connect() as connection:
            transaction = await connection.begin()
            try:
                await set_scope_context(
                    connection, role=role, statement_timeout_ms=timeout_ms, dialect=connection.dialect
                )
                yield _CoreStatements(connection)
            except BaseException:
                await transaction.rollback()
                raise
            await _commit(transaction.commit())
        return
    dialect = engine.dialect
    # The pool's connection itself, without a SQLAlchemy Connection around it (a few % of a read).
    # A failure to open one is what SQLAlchemy makes of it (db/engine.py): unavailable, a 503.
    try:
        pooled = await greenlet_spawn(engine.sync_engine.raw_connection)
        idle: asyncpg.Connection = pooled.driver_connection  # type: ignore[assignment]
        if idle.is_closed():
            # Closed while it idled in the pool (a server or PgBouncer restart): nothing has run on
            # it yet, so take a fresh one once instead of failing the request.
            await greenlet_spawn(pooled.invalidate)
            pooled = await greenlet_spawn(engine.sync_engine.raw_connection)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError(None, None, exc, connection_invalidated=True) from exc
    driver: asyncpg.Connection = pooled.driver_connection  # type: ignore[assignment]
    discard = False
    try:
        try:
            driver_transaction = driver.transaction()
            await driver_transaction.start()
            await set_scope_context(driver, role=role, statement_timeout_ms=timeout_ms, dialect=dialect)
            yield _DriverStatements(driver, dialect)
        except BaseException as exc:
            discard = isinstance(exc, (*_DRIVER_ERRORS, OSError, TimeoutError))
            if not driver.is_closed() and driver.is_in_transaction():
                try:
                    await driver_transaction.rollback()
                except Exception:  # the error that matters is the first one; the connection goes
                    discard = True
            error = _as_dbapi_error(exc, driver)
            if error is exc:
                raise
            raise error from exc
        try:
            await driver_transaction.commit()
        except Exception as exc:
            discard = True
            error = _as_dbapi_error(exc, driver)
            if _outcome_unknown(error):
                raise CommitOutcomeUnknown(COMMIT_LOST) from exc
            raise error from exc
    finally:
        if discard or driver.is_closed() or driver.is_in_transaction():
            # Never back into the pool with a transaction (and its tenant) still open, nor in a
            # state the driver could not vouch for: closed and replaced by a new one.
            await greenlet_spawn(pooled.invalidate)
        else:
            await greenlet_spawn(pooled.close)  # back to the pool


def _violation(exc: DBAPIError, unique: DomainError | None, foreign_key: DomainError | None) -> DomainError | None:
    """The domain error a unique or foreign-key violation means here (a copy: raising sets its
    traceback), or None for any other error."""
    code = sqlstate_of(exc)
    if code == UNIQUE_VIOLATION:
        return copy.copy(unique or DEFAULT_UNIQUE)
    if code == FOREIGN_KEY_VIOLATION:
        return copy.copy(foreign_key or DEFAULT_FOREIGN_KEY)
    return None


async def _commit(committing: Any) -> None:
    """COMMIT on SQLAlchemy's connection; a connection lost meanwhile is `CommitOutcomeUnknown`."""
    try:
        await committing
    except Exception as exc:
        if _outcome_unknown(exc):
            raise CommitOutcomeUnknown(COMMIT_LOST) from exc
        raise


@asynccontextmanager
async def tenant_writes(
    sessions: async_sessionmaker[AsyncSession],
    *,
    unique: DomainError | None = None,
    foreign_key: DomainError | None = None,
) -> AsyncIterator[TenantStatements]:
    """`tenant_reads` for Core writes (`INSERT ... RETURNING`), with the violations mapped as
    `UnitOfWork.transaction` maps them and a commit whose outcome is unknown said so. Not for a
    request whose answer commits with its work (an Idempotency-Key): that one needs its session."""
    try:
        async with tenant_reads(sessions) as statements:
            yield statements
    except DBAPIError as exc:
        if (violation := _violation(exc, unique, foreign_key)) is not None:
            raise violation from None
        raise
