"""Resources, permission levels and member roles.

A token carries a level per resource (none/read/write); a member's role caps every token of that
member. The cap is looked up on every request, so a demotion narrows existing tokens at once.
"""

from __future__ import annotations

LEVELS = {"none": 0, "read": 1, "write": 2}
RESOURCES = ("products", "members", "tokens", "audit_events", "lookups", "orders")
MEMBER_ROLES = ("owner", "admin", "member", "viewer")

ROLE_CEILINGS: dict[str, dict[str, str]] = {
    "owner": {
        "products": "write",
        "members": "write",
        "tokens": "write",
        "audit_events": "read",
        "lookups": "write",
        "orders": "write",
    },
    "admin": {
        "products": "write",
        "members": "write",
        "tokens": "write",
        "audit_events": "read",
        "lookups": "write",
        "orders": "write",
    },
    "member": {
        "products": "write",
        "members": "read",
        "tokens": "write",
        "audit_events": "none",
        "lookups": "write",
        "orders": "write",
    },
    "viewer": {
        "products": "read",
        "members": "read",
        "tokens": "write",
        "audit_events": "none",
        "lookups": "read",
        "orders": "read",
    },
}


def lower(a: str, b: str) -> str:
    return a if LEVELS.get(a, 0) <= LEVELS.get(b, 0) else b


def effective_level(role: str, token_permissions: dict[str, str], resource: str) -> str:
    return lower(token_permissions.get(resource, "none"), ROLE_CEILINGS.get(role, {}).get(resource, "none"))


def level_allows(level: str, permission: str) -> bool:
    return LEVELS.get(level, 0) >= LEVELS[permission]


def role_permissions(role: str) -> dict[str, str]:
    """Everything a role may do: the default grant of a token that asks for nothing narrower."""
    return dict(ROLE_CEILINGS[role])
