"""Sessions, and the one place that sets the tenant on a transaction (docs/03-architecture.md).

Every transaction of a `TenantSession` starts with exactly one statement that switches to the
tenant (or platform) role and sets the tenant, the user and the statement timeout as
transaction-local settings. They die with COMMIT or ROLLBACK, so a pooled connection never carries
a tenant into the next request.

The statement and its parameters live here and nowhere else: the session hook runs it, and so does
`set_transaction_context` for the few callers that hold a raw connection or switch roles inside a
transaction (invitation acceptance, the leak report, the seeder, the dev server, the tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from tenantry.settings import Settings
from tenantry.tenancy.context import current_scope

# `role` is a GUC: set_config('role', r, true) is SET LOCAL ROLE, and it rides in the same
# statement as the tenant instead of costing a round trip of its own.
_SET_TRANSACTION_CONTEXT = text(
    "SELECT set_config('role', :role, true), "
    "set_config('app.tenant_id', :tenant_id, true), "
    "set_config('app.user_id', :user_id, true), "
    "set_config('statement_timeout', :statement_timeout, true)"
)

SESSION_ROLE_KEY = "tenantry_db_role"
STATEMENT_TIMEOUT_KEY = "tenantry_statement_timeout_ms"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000


def _context_parameters(
    role: str, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None, statement_timeout_ms: int
) -> dict[str, str]:
    """The statement's parameters. No tenant is the empty string: the policies then match nothing."""
    return {
        "role": role,
        "tenant_id": str(tenant_id) if tenant_id else "",
        "user_id": str(user_id) if user_id else "",
        "statement_timeout": str(statement_timeout_ms),
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
) -> None:
    """Run the tenant statement in `target`'s open transaction: the same statement as the hook.

    For code that holds a raw connection (seeding, tests) or must change roles inside one
    transaction (`UnitOfWork.become`); everything else gets it from the session hook.
    """
    await target.execute(_SET_TRANSACTION_CONTEXT, _context_parameters(role, tenant_id, user_id, statement_timeout_ms))


def positional_transaction_context(dialect: Dialect) -> tuple[str, Callable[..., list[str]]]:
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
    ) -> list[str]:
        parameters = _context_parameters(role, tenant_id, user_id, statement_timeout_ms)
        return [parameters[name] for name in names]

    return str(compiled), arguments


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
