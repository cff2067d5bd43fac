"""The request's principal, held in a contextvar for that request only.

The authentication middleware is the only writer; it resets the variable in `finally`, so a
principal never outlives its request, whatever the handler did.
"""

from __future__ import annotations

from contextvars import ContextVar
from uuid import UUID

import msgspec

# Permission levels, ordered. A token and a member role each grant a level per resource; the
# effective level is the lower of the two.
LEVELS = {"none": 0, "read": 1, "write": 2}

# What each member role may do at most, per resource. A demotion narrows existing tokens at once
# because this is consulted on every request, not copied into the token.
ROLE_CEILINGS: dict[str, dict[str, str]] = {
    "owner": {"products": "write"},
    "admin": {"products": "write"},
    "member": {"products": "write"},
    "viewer": {"products": "read"},
}
RESOURCES = ("products",)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: one token of one member of one workspace."""

    token_id: UUID
    tenant_id: UUID
    user_id: UUID
    membership_id: UUID
    role: str
    token_permissions: dict[str, str]

    def level(self, resource: str) -> int:
        token_level = LEVELS.get(self.token_permissions.get(resource, "none"), 0)
        role_level = LEVELS.get(ROLE_CEILINGS.get(self.role, {}).get(resource, "none"), 0)
        return min(token_level, role_level)

    def allows(self, resource: str, permission: str) -> bool:
        return self.level(resource) >= LEVELS[permission]


current_principal: ContextVar[Principal | None] = ContextVar("tenantry_principal", default=None)
current_request_id: ContextVar[str | None] = ContextVar("tenantry_request_id", default=None)
