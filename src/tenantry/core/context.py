"""Who is calling, and which tenant the current transaction belongs to.

Three contextvars, each set for one request (or one admin operation) and reset in `finally`:
- `current_principal`: a tenant API caller (one token of one member of one workspace);
- `current_admin`: a platform admin caller (an admin token);
- `current_scope`: the tenant that the session hook sets on every transaction. The authentication
  middleware sets it from the principal; platform operations on one workspace's data set it with
  `tenant_scope()`. Nothing else writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import msgspec

from tenantry.core.permissions import effective_level, level_allows


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant API caller: one token of one member of one workspace."""

    token_id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    membership_id: uuid.UUID
    role: str
    token_permissions: dict[str, str]
    token_fingerprint: str = ""
    max_token_lifetime_days: int = 366

    def level(self, resource: str) -> str:
        """What this token may do on `resource` now: the lower of its grant and the member's role."""
        return effective_level(self.role, self.token_permissions, resource)

    def allows(self, resource: str, permission: str) -> bool:
        return level_allows(self.level(resource), permission)


class AdminPrincipal(msgspec.Struct, frozen=True, kw_only=True):
    """A platform admin caller: an admin token, or an operator at the CLI (no token)."""

    token_id: uuid.UUID | None
    name: str
    token_fingerprint: str = ""


class TenantScope(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None = None


current_principal: ContextVar[Principal | None] = ContextVar("tenantry_principal", default=None)
current_admin: ContextVar[AdminPrincipal | None] = ContextVar("tenantry_admin", default=None)
current_scope: ContextVar[TenantScope | None] = ContextVar("tenantry_scope", default=None)
current_request_id: ContextVar[str | None] = ContextVar("tenantry_request_id", default=None)


@contextmanager
def tenant_scope(tenant_id: uuid.UUID, user_id: uuid.UUID | None = None) -> Iterator[TenantScope]:
    """Run the transactions begun inside this block with `tenant_id` as their tenant."""
    scope = TenantScope(tenant_id, user_id)
    reset = current_scope.set(scope)
    try:
        yield scope
    finally:
        current_scope.reset(reset)
