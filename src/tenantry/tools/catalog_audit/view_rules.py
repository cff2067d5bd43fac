"""Rule on views over tenant tables (V1), in every user schema."""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import Catalog, View
from tenantry.tools.catalog_audit.findings import Issue, rule

_TRUE = {"true", "on", "yes", "1", "t", "y"}


def security_invoker(view: View) -> bool:
    for option in view.options:
        name, _, value = option.partition("=")
        if name == "security_invoker":
            return value.lower() in _TRUE
    return False


def views_over_tenant_tables(catalog: Catalog) -> list[View]:
    """Views that read a tenant table, directly or through other views."""
    reaching = {t.oid for t in catalog.tenant_tables}
    found: dict[int, View] = {}
    changed = True
    while changed:
        changed = False
        for view in catalog.views:
            if view.oid not in found and view.depends_on & reaching:
                found[view.oid] = view
                reaching.add(view.oid)
                changed = True
    return sorted(found.values(), key=lambda v: v.name)


@rule("V1", "critical", "view over tenant tables is not security_invoker")
def invoker_views(catalog: Catalog) -> Iterator[Issue]:
    """A view runs its query with its owner's rights unless it is security_invoker (PostgreSQL
    15+): the tenant policies are then checked for the owner, not for the tenant role, and the
    owner's own policies (the resolvers read every workspace) or its BYPASSRLS decide what a tenant
    sees. A materialized view stores the rows and has no row-level security at all."""
    for view in views_over_tenant_tables(catalog):
        if view.materialized:
            yield Issue(
                f"materialized view {view.name}",
                "stores rows of tenant tables and has no row-level security",
                f"DROP MATERIALIZED VIEW {view.name}; or keep it away from every serving role",
            )
        elif not security_invoker(view):
            yield Issue(
                f"view {view.name}",
                "reads tenant tables with its owner's rights (not security_invoker)",
                f"ALTER VIEW {view.name} SET (security_invoker = true);",
            )


RULES = (invoker_views,)
