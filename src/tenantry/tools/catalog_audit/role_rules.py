"""Rules on the roles that serve requests (R1-R6).

Requests run as the app login role, which becomes the tenant role (or the platform role) per
transaction. Whatever any of them can do, or can become with SET ROLE, a request can do: so
R1-R4 check the tenant and app roles and every role they can reach through memberships, except
the owner, which R5 reports on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import Catalog, Role
from tenantry.tools.catalog_audit.findings import Issue, rule

_LISTED = 8


def _listing(items: list[str]) -> str:
    more = len(items) - _LISTED
    return ", ".join(items[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def _reach(catalog: Catalog) -> Iterator[tuple[str, Role]]:
    """(serving role, a role it is or can become), for the tenant and app roles."""
    for start in (catalog.roles.tenant, catalog.roles.app):
        yield start, catalog.role(start)
        seen = {r.oid: r for r in catalog.reachable(start, via="set") + catalog.reachable(start, via="inherit")}
        for role in sorted(seen.values(), key=lambda r: r.name):
            if role.name != catalog.roles.owner:
                yield start, role


def _attribute_issues(catalog: Catalog, attribute: str, keyword: str, consequence: str) -> Iterator[Issue]:
    for start, role in _reach(catalog):
        if getattr(role, attribute):
            subject = "is" if role.name == start else f"can SET ROLE to {role.name}, which is"
            yield Issue(
                f"role {start}", f"{subject} {keyword}: {consequence}", f'ALTER ROLE "{role.name}" NO{keyword};'
            )


@rule("R1", "critical", "a serving role is, or can become, a superuser")
def no_superuser(catalog: Catalog) -> Iterator[Issue]:
    """A superuser skips every privilege check and every row-level security policy, FORCE or not."""
    yield from _attribute_issues(catalog, "superuser", "SUPERUSER", "it bypasses every policy and privilege")


@rule("R2", "critical", "a serving role is, or can become, BYPASSRLS")
def no_bypassrls(catalog: Catalog) -> Iterator[Issue]:
    """BYPASSRLS ignores every row-level security policy: the tenant policies stop existing."""
    yield from _attribute_issues(catalog, "bypassrls", "BYPASSRLS", "row-level security does not apply to it")


@rule("R3", "high", "a serving role owns database objects")
def owns_nothing(catalog: Catalog) -> Iterator[Issue]:
    """An owner can ALTER its table (DISABLE ROW LEVEL SECURITY, DROP POLICY), redefine its
    function, or grant itself anything on its schema. Only the owner role owns objects."""
    for name in catalog.serving_roles():
        owned = catalog.owned.get(name, [])
        if owned:
            yield Issue(
                f"role {name}",
                f"owns {_listing(owned)}",
                f'ALTER ... OWNER TO "{catalog.roles.owner}" for each (or REASSIGN OWNED BY "{name}" '
                f'TO "{catalog.roles.owner}" in this database)',
            )


@rule("R4", "high", "a serving role may CREATE in a schema or the database")
def creates_nothing(catalog: Catalog) -> Iterator[Issue]:
    """A role that can create objects can shadow ours (a table or function earlier on someone's
    search_path) and own what it creates (R3). Only the owner role creates objects."""
    superusers = {r.name for r in catalog.role_by_oid.values() if r.superuser}
    for name in catalog.serving_roles():
        targets = catalog.may_create.get(name, [])
        if targets and name not in superusers:  # a superuser may do anything: R1 says so already
            fixes = [
                f'REVOKE CREATE ON {target.split(" ", 1)[0].upper()} {target.split(" ", 1)[1]} FROM "{name}", PUBLIC;'
                for target in targets
            ]
            yield Issue(f"role {name}", f"may CREATE in {_listing(targets)}", " ".join(fixes))


@rule("R5", "critical", "a serving role can become the owner role")
def owner_out_of_reach(catalog: Catalog) -> Iterator[Issue]:
    """The owner role owns every table: a request that can SET ROLE to it (or inherits from it) can
    turn row-level security off, drop policies, and read past FORCE through its own policies."""
    owner = catalog.roles.owner
    for start in (catalog.roles.tenant, catalog.roles.app):
        via = [v for v in ("set", "inherit") if any(r.name == owner for r in catalog.reachable(start, via=v))]
        if via:
            how = " and ".join({"set": "SET ROLE to", "inherit": "inherits from"}[v] for v in via)
            yield Issue(
                f"role {start}",
                f"can {how} the owner role {owner} through role memberships",
                f'REVOKE "{owner}" FROM "{start}"; (and from any role between them)',
            )


@rule("R6", "high", "a serving role inherits the privileges of another role")
def inherits_nothing(catalog: Catalog) -> Iterator[Issue]:
    """The app login role is NOINHERIT: on its own it can only call the token resolver, and it has
    tenant or platform rights only inside a transaction that switched to that role. A login role
    that inherits has the union of every role it belongs to on every statement, before any tenant
    is set. The tenant role inherits nothing either, so its grants are exactly its own."""
    for start in (catalog.roles.tenant, catalog.roles.app):
        inherited = [r.name for r in catalog.reachable(start, via="inherit") if r.name != catalog.roles.owner]
        if inherited:
            yield Issue(
                f"role {start}",
                f"inherits the privileges of {_listing(inherited)}",
                f'ALTER ROLE "{start}" NOINHERIT; and on PostgreSQL 16+ re-grant its memberships WITH INHERIT FALSE',
            )


RULES = (no_superuser, no_bypassrls, owns_nothing, creates_nothing, owner_out_of_reach, inherits_nothing)
