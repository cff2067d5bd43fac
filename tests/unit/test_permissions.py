"""Permission ceilings (auth/permissions.py): a token never does more than its member's role allows."""

from __future__ import annotations

import itertools

import pytest

from tenantry.auth.permissions import (
    LEVELS,
    MEMBER_ROLES,
    RESOURCES,
    ROLE_CEILINGS,
    effective_level,
    level_allows,
    lower,
    role_permissions,
)

# The ceilings as docs/08-token-guide.md states them, written out again on purpose: a change to the
# table in the code must be a change to this one too.
EXPECTED = {
    #           products  members  tokens   audit_events lookups  orders
    "owner": ("write", "write", "write", "read", "write", "write"),
    "admin": ("write", "write", "write", "read", "write", "write"),
    "member": ("write", "read", "write", "none", "write", "write"),
    "viewer": ("read", "read", "write", "none", "read", "read"),
}


def test_every_role_has_a_ceiling_for_every_resource_and_nothing_else() -> None:
    assert set(ROLE_CEILINGS) == set(MEMBER_ROLES)
    for role, levels in EXPECTED.items():
        assert ROLE_CEILINGS[role] == dict(zip(RESOURCES, levels, strict=True)), role
        assert set(ROLE_CEILINGS[role].values()) <= set(LEVELS)


def test_the_roles_are_ordered_each_ceiling_at_most_the_one_above() -> None:
    for upper, below in itertools.pairwise(MEMBER_ROLES):
        for resource in RESOURCES:
            assert LEVELS[ROLE_CEILINGS[below][resource]] <= LEVELS[ROLE_CEILINGS[upper][resource]], (below, resource)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("none", "write", "none"), ("read", "write", "read"), ("write", "read", "read"), ("write", "write", "write")],
)
def test_lower_is_the_smaller_level_whichever_side_it_is_on(a: str, b: str, expected: str) -> None:
    assert lower(a, b) == expected
    assert lower(b, a) == expected


def test_an_unknown_level_in_a_token_allows_nothing() -> None:
    """A level the code does not know (a typo in a stored grant) must not read as a high one."""
    effective = effective_level("owner", {"products": "superuser"}, "products")
    assert not level_allows(effective, "read")
    assert not level_allows(effective, "write")


@pytest.mark.parametrize(("role", "resource"), list(itertools.product(MEMBER_ROLES, RESOURCES)))
def test_the_effective_level_is_the_token_level_capped_by_the_role(role: str, resource: str) -> None:
    ceiling = ROLE_CEILINGS[role][resource]
    for granted in LEVELS:
        effective = effective_level(role, {resource: granted}, resource)
        assert LEVELS[effective] == min(LEVELS[granted], LEVELS[ceiling]), (granted, effective)


def test_a_resource_the_token_does_not_name_is_none_even_for_an_owner() -> None:
    assert effective_level("owner", {"products": "write"}, "orders") == "none"
    assert effective_level("owner", {}, "products") == "none"


def test_an_unknown_role_caps_everything_at_none() -> None:
    assert effective_level("guest", role_permissions("owner"), "products") == "none"


def test_a_demotion_narrows_an_existing_token_at_once() -> None:
    """The level is computed from the role at each request, not stored with the token."""
    token = role_permissions("owner")
    assert effective_level("owner", token, "members") == "write"
    assert effective_level("member", token, "members") == "read"
    assert effective_level("viewer", token, "products") == "read"
    assert effective_level("member", token, "audit_events") == "none"


@pytest.mark.parametrize(
    ("level", "permission", "allowed"),
    [
        ("none", "read", False),
        ("read", "read", True),
        ("read", "write", False),
        ("write", "read", True),
        ("write", "write", True),
    ],
)
def test_level_allows_read_below_write(level: str, permission: str, allowed: bool) -> None:
    assert level_allows(level, permission) is allowed


def test_role_permissions_is_a_copy_of_the_ceiling() -> None:
    granted = role_permissions("member")
    granted["members"] = "write"
    assert ROLE_CEILINGS["member"]["members"] == "read"
