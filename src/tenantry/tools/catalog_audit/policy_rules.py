"""Rules on how policy expressions are written (P1, P2), for every policy in the app schema."""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import Catalog, Policy
from tenantry.tools.catalog_audit.expressions import current_setting_outside_select, reads_relations
from tenantry.tools.catalog_audit.findings import Issue, rule


def _expressions(policy: Policy) -> list[tuple[str, str]]:
    return [(clause, expr) for clause, expr in (("USING", policy.using), ("WITH CHECK", policy.with_check)) if expr]


def _where(catalog: Catalog, policy: Policy) -> str:
    table = catalog.tables.get(policy.table_oid)
    return f"policy {policy.name} on {table.name if table else policy.table_oid}"


@rule("P1", "medium", "policy calls current_setting outside a (SELECT ...)")
def setting_in_initplan(catalog: Catalog) -> Iterator[Issue]:
    """Wrapped as `(SELECT current_setting(...))`, the setting is read once per statement (an
    initPlan) and the comparison can use an index; bare, it is called for every row the policy
    looks at, which makes every tenant query a sequential filter on large tables."""
    for policy in catalog.policies:
        bare = [clause for clause, expr in _expressions(policy) if current_setting_outside_select(expr)]
        if bare:
            yield Issue(
                _where(catalog, policy),
                f"{' and '.join(bare)} call current_setting() outside a (SELECT ...): it is evaluated once per row",
                "write the value as (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)",
            )


@rule("P2", "high", "policy reads another table or calls a user-defined function")
def no_subqueries(catalog: Catalog) -> Iterator[Issue]:
    """A policy must decide from the row and the transaction's settings alone. A subquery (over
    another table, a catalog, or the table itself) runs for each row under that table's own
    policies, is slow, and Citus rejects it; a user-defined function may do the same out of sight.
    Found from the deparsed expression (any FROM) and from pg_depend (relations, functions)."""
    for policy in catalog.policies:
        reasons = []
        subquery = [clause for clause, expr in _expressions(policy) if reads_relations(expr)]
        if subquery:
            reasons.append(f"{' and '.join(subquery)} hold a subquery with FROM")
        if policy.relations:
            reasons.append(f"it depends on {', '.join(policy.relations)}")
        if policy.functions:
            reasons.append(f"it calls {', '.join(policy.functions)}")
        if reasons:
            yield Issue(
                _where(catalog, policy),
                "; ".join(reasons),
                "compare the row's own columns with transaction settings only; move membership or status "
                "checks into the code that sets the tenant",
            )


RULES = (setting_in_initplan, no_subqueries)
