"""Who is calling: a tenant API caller or a platform admin, for one request (or one CLI operation).

Both live in contextvars set by the authentication middleware (or the admin CLI) and reset in
`finally`. Which tenant a transaction belongs to is `tenancy.context`'s business, not this one's.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import msgspec

from tenantry.auth.permissions import effective_level, level_allows
from tenantry.core.plans import PlanLimits


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
    # The workspace's plan (its own request limits), read with the token; None: every default.
    plan: PlanLimits | None = None

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


current_principal: ContextVar[Principal | None] = ContextVar("tenantry_principal", default=None)
current_admin: ContextVar[AdminPrincipal | None] = ContextVar("tenantry_admin", default=None)
