"""Which tenant the current transaction belongs to.

`current_scope` is set for one request (by the authentication middleware, from the verified
principal) or for one platform operation on one workspace's data (with `tenant_scope()`), and reset
in `finally`. The session hook in `tenancy/session.py` reads it at the start of every transaction;
nothing else writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import msgspec


class TenantScope(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None = None


current_scope: ContextVar[TenantScope | None] = ContextVar("tenantry_scope", default=None)


@contextmanager
def tenant_scope(tenant_id: uuid.UUID, user_id: uuid.UUID | None = None) -> Iterator[TenantScope]:
    """Run the transactions begun inside this block with `tenant_id` as their tenant."""
    scope = TenantScope(tenant_id, user_id)
    reset = current_scope.set(scope)
    try:
        yield scope
    finally:
        current_scope.reset(reset)
