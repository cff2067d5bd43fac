"""Sessions, and the one place that sets the tenant on a transaction (docs/03-architecture.md).

Every transaction of a `TenantSession` starts with exactly one statement that switches to the
tenant (or platform) role and sets the tenant, the user and the statement timeout as
transaction-local settings. They die with COMMIT or ROLLBACK, so a pooled connection never carries
a tenant into the next request.

That statement calls `tenantry_set_context()` (migrations/versions/0008_tenant_context.py), which
runs `SET LOCAL` for each setting: on Citus that reaches the workers, where `set_config()` does not,
and setting the tenant in two ways in one transaction lets the coordinator and the workers disagree
on it. So the tenant is set by that function only, and the function is called from here only: the
session hook runs it, and so does `set_transaction_context` for the few callers that hold a raw
connection or switch roles inside a transaction (invitation acceptance, the leak report, the
seeder, the dev server, the tests). The names below are the ones `tenantry audit` checks for.

Reads that only go to the wire (a product page, a product by id) need no ORM session at all:
`unit_of_work.tenant_reads` opens a transaction on a pooled connection and starts it with the
same statement, through `set_scope_context` below.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from tenantry.settings import Settings
from tenantry.tenancy import auth_changes as _auth_changes  # noqa: F401  (registers its flush hook)
from tenantry.tenancy.context import current_scope

# The setting the policies read through `CURRENT_TENANT_FUNCTION`, and the user's.
TENANT_SETTING = "app.tenant_id"
USER_SETTING = "app.user_id"
SET_CONTEXT_FUNCTION = "tenantry_set_context"
CURRENT_TENANT_FUNCTION = "tenantry_current_tenant"

# One round trip, as before: the function sets the tenant, the user and the timeout, then the role.
_SET_TRANSACTION_CONTEXT = text(
    f"SELECT public.{SET_CONTEXT_FUNCTION}(CAST(:role AS text), CAST(:tenant_id AS uuid), "
    "CAST(:user_id AS uuid), CAST(:statement_timeout AS integer))"
)
# The function runs as the login role only (a switched-to role may not execute it): a transaction
# that has already switched goes back to the login role first. Rare (`UnitOfWork.become`), so its
# second statement costs nothing on the request path.
_BACK_TO_LOGIN_ROLE = text("SET LOCAL ROLE NONE")

SESSION_ROLE_KEY = "tenantry_db_role"
STATEMENT_TIMEOUT_KEY = "tenantry_statement_timeout_ms"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000


def _context_parameters(
    role: str, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None, statement_timeout_ms: int
) -> dict[str, str | uuid.UUID | int | None]:
    """The statement's parameters. No tenant is NULL: the function sets it empty, matching nothing."""
    return {
        "role": role,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "statement_timeout": statement_timeout_ms,
    }


class TenantSession(Session):
    """The exact session class the app uses; the hook below is registered on it and tested to fire."""


@event.listens_for(TenantSession, "after_begin")
def set_tenant_context(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    """Run at the start of every transaction, before any statement of the handler."""
    role = session.info.get(SESSION_ROLE_KEY)
    if not role:
        # Fail closed: a session that does not say which role it serves runs nothing.
        raise RuntimeError("TenantSession used without a database role")
    scope = current_scope.get()
    connection.execute(
        _SET_TRANSACTION_CONTEXT,
        _context_parameters(
            role,
            scope.tenant_id if scope else None,
            scope.user_id if scope else None,
            session.info.get(STATEMENT_TIMEOUT_KEY, DEFAULT_STATEMENT_TIMEOUT_MS),
        ),
    )


async def set_transaction_context(
    target: AsyncConnection | AsyncSession,
    *,
    role: str,
    tenant_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    switched: bool = False,
) -> None:
    """Run the tenant statement in `target`'s open transaction: the same statement as the hook.

    For code that holds a raw connection (seeding, tests) or must change roles inside one
    transaction (`UnitOfWork.become`); everything else gets it from the session hook. `switched`:
    the transaction may have switched roles already, so it goes back to the login role first.
    """
    if switched:
        await target.execute(_BACK_TO_LOGIN_ROLE)
    await target.execute(_SET_TRANSACTION_CONTEXT, _context_parameters(role, tenant_id, user_id, statement_timeout_ms))


async def set_statement_timeout(target: AsyncConnection | AsyncSession, statement_timeout_ms: int) -> None:
    """Change the open transaction's statement timeout (a purge gets longer than a request).

    `SET LOCAL`, like the context function: on Citus that reaches the workers, where a
    `set_config()` would leave them with the timeout the transaction started with.
    """
    if isinstance(statement_timeout_ms, bool) or not isinstance(statement_timeout_ms, int) or statement_timeout_ms < 0:
        raise ValueError("statement_timeout_ms must be a non-negative int")
    # SET takes no bind parameter; the value is an int, checked above.
    await target.execute(text(f"SET LOCAL statement_timeout = {statement_timeout_ms}"))


def positional_transaction_context(dialect: Dialect) -> tuple[str, Callable[..., list[object]]]:
    """The statement compiled for a driver's own placeholders, and a function giving its arguments.

    For the benchmark's raw asyncpg baseline, which must run exactly what the hook runs: call the
    function with the same keywords as `set_transaction_context` (role, tenant_id, ...).
    """
    compiled = _SET_TRANSACTION_CONTEXT.compile(dialect=dialect)
    names = list(compiled.positiontup or ())

    def arguments(
        *,
        role: str,
        tenant_id: uuid.UUID | None,
        user_id: uuid.UUID | None = None,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    ) -> list[object]:
        parameters = _context_parameters(role, tenant_id, user_id, statement_timeout_ms)
        return [parameters[name] for name in names]

    return str(compiled), arguments


async def set_scope_context(
    target: AsyncConnection | asyncpg.Connection, *, role: str, statement_timeout_ms: int, dialect: Dialect
) -> None:
    """The hook's statement for the current scope, at the start of a transaction that no session
    opened (`unit_of_work.tenant_reads`): on SQLAlchemy's connection, or on asyncpg's own."""
    scope = current_scope.get()
    tenant_id, user_id = (scope.tenant_id, scope.user_id) if scope else (None, None)
    if isinstance(target, AsyncConnection):
        await target.execute(
            _SET_TRANSACTION_CONTEXT, _context_parameters(role, tenant_id, user_id, statement_timeout_ms)
        )
        return
    if (context := _POSITIONAL_CONTEXT.get(dialect)) is None:
        context = _POSITIONAL_CONTEXT[dialect] = positional_transaction_context(dialect)
    sql, arguments = context
    await target.execute(
        sql, *arguments(role=role, tenant_id=tenant_id, user_id=user_id, statement_timeout_ms=statement_timeout_ms)
    )


# The statement compiled for asyncpg's placeholders, once per dialect.
_POSITIONAL_CONTEXT: weakref.WeakKeyDictionary[Dialect, tuple[str, Callable[..., list[object]]]] = (
    weakref.WeakKeyDictionary()
)


def _session_factory(engine: AsyncEngine, settings: Settings, role: str) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine,
        sync_session_class=TenantSession,
        expire_on_commit=False,
        autoflush=False,
        info={SESSION_ROLE_KEY: role, STATEMENT_TIMEOUT_KEY: settings.db_statement_timeout_ms},
    )


def tenant_session_factory(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every transaction runs as the tenant role with the request's tenant."""
    return _session_factory(engine, settings, settings.tenant_role)


def platform_session_factory(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions for the control plane: the platform role, and the tenant of `tenant_scope()` if any.

    Tenant tables stay bound by their tenant policy for this role too, so an admin operation on a
    workspace's data sees that workspace only.
    """
    return _session_factory(engine, settings, settings.platform_role)


def login_session_factory(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    """Sessions whose transactions start as the app login role itself, with no tenant and no role.

    Only for the SECURITY DEFINER entry points granted to the login role alone (the leak report),
    which then switch to a role with `UnitOfWork.become` before touching any table. Not a
    `TenantSession`: the hook would switch roles before the entry point could run.
    """
    return async_sessionmaker(
        engine,
        expire_on_commit=False,
        autoflush=False,
        info={STATEMENT_TIMEOUT_KEY: settings.db_statement_timeout_ms},
    )
