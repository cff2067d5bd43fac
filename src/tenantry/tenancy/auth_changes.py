"""Announcing, in the transaction that makes it, a change that every token cache must hear of.

Each API process caches verified tokens (auth/cache.py) and drops a workspace's entries when the
channel `auth_changed` carries that workspace's id. The notification is sent here, by the
transaction that changes a token or a membership, as a plain `SELECT pg_notify(...)`: on Citus that
runs on the coordinator, where the API processes listen, whereas the tables' triggers run on the
workers' shards, whose notifications reach nobody (docs/scale-out.md). On plain PostgreSQL the
same statement is sent; PostgreSQL folds it with the trigger's identical notification of the same
transaction, so each process hears it once. Like every NOTIFY it goes out on COMMIT, never for a
rollback.

What counts as a change: an update of a column a model lists in `__auth_columns__` (what
resolve_token() reads), or a deletion, flushed through the ORM session (the flush hooks below).
A Core UPDATE or DELETE of those tables is announced by its repository (`announce_auth_change`),
and the SQL functions that revoke (policies/10_auth_functions.sql) notify themselves.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

CHANNEL = "auth_changed"
_PENDING_KEY = "tenantry_auth_changes"
_NOTIFY = text(f"SELECT pg_catalog.pg_notify('{CHANNEL}', CAST(:tenant AS text))")


def _changed_tenants(session: Session) -> set[uuid.UUID]:
    tenants: set[uuid.UUID] = set()
    for row in session.dirty:
        columns: frozenset[str] | None = getattr(type(row), "__auth_columns__", None)
        if columns and any(inspect(row).attrs[name].history.has_changes() for name in columns):
            tenants.add(row.tenant_id)
    for row in session.deleted:
        if getattr(type(row), "__auth_columns__", None):
            tenants.add(row.tenant_id)
    return tenants


@event.listens_for(Session, "before_flush")
def _note_changes(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    """Before the flush: its histories are complete here (an attribute set to a SQL expression,
    such as `revoked_at = now()`, is expired by the flush and has none afterwards)."""
    session.info[_PENDING_KEY] = _changed_tenants(session)


@event.listens_for(Session, "after_flush")
def _announce_flushed_changes(session: Session, flush_context: UOWTransaction) -> None:
    """After the flush's statements, in the same transaction: a flush that failed announces nothing."""
    for tenant in sorted(session.info.pop(_PENDING_KEY, set())):
        session.connection().execute(_NOTIFY, {"tenant": str(tenant)})


async def announce_auth_change(session: AsyncSession | Any, tenant_id: uuid.UUID) -> None:
    """Announce a change made without the ORM (a Core UPDATE) to the workspace's tokens or members."""
    await session.execute(_NOTIFY, {"tenant": str(tenant_id)})
