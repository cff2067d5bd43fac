"""Sessions, and the one place that sets the tenant on a transaction.

Every transaction of a `TenantSession` starts with exactly one statement that switches to the
tenant role and sets the tenant and user as transaction-local settings. They die with COMMIT or
ROLLBACK, so a pooled connection never carries a tenant into the next request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from tenantry.settings import Settings
from tenantry.tenancy.context import current_scope

# `role` is a GUC: set_config('role', r, true) is SET LOCAL ROLE, and it rides in the same
# statement as the tenant instead of costing a round trip of its own.
SET_TRANSACTION_CONTEXT = text(
    "SELECT set_config('role', :role, true), "
    "set_config('app.tenant_id', :tenant_id, true), "
    "set_config('app.user_id', :user_id, true), "
    "set_config('statement_timeout', :statement_timeout, true)"
)

SESSION_ROLE_KEY = "tenantry_db_role"
STATEMENT_TIMEOUT_KEY = "tenantry_statement_timeout"


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
    # No scope means an empty tenant: the policies then match no row and reject writes.
    connection.execute(
        SET_TRANSACTION_CONTEXT,
        transaction_context(
            role,
            scope.tenant_id if scope else None,
            scope.user_id if scope else None,
            session.info.get(STATEMENT_TIMEOUT_KEY, "5000"),
        ),
    )


def transaction_context(
    role: str, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None, statement_timeout: str = "5000"
) -> dict[str, str]:
    """Parameters for SET_TRANSACTION_CONTEXT; control-plane code outside a request uses it too."""
    return {
        "role": role,
        "tenant_id": str(tenant_id) if tenant_id else "",
        "user_id": str(user_id) if user_id else "",
        "statement_timeout": statement_timeout,
    }


def _session_factory(engine: AsyncEngine, settings: Settings, role: str) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine,
        sync_session_class=TenantSession,
        expire_on_commit=False,
        autoflush=False,
        info={SESSION_ROLE_KEY: role, STATEMENT_TIMEOUT_KEY: str(settings.db_statement_timeout_ms)},
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


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A dependency: one session per request, closed (and rolled back if still open) afterwards."""
    async with factory() as session:
        yield session
