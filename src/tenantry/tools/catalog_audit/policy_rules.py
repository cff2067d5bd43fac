"""Rules on how policy expressions are written (P1, P2), for every policy in the app schema."""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import Catalog, Policy
from tenantry.tools.catalog_audit.expressions import CURRENT_TENANT_FUNCTION, has_subquery, reads_relations
from tenantry.tools.catalog_audit.findings import Issue, rule


def _expressions(policy: Policy) -> list[tuple[str, str]]:
    return [(clause, expr) for clause, expr in (("USING", policy.using), ("WITH CHECK", policy.with_check)) if expr]


def _where(catalog: Catalog, policy: Policy) -> str:
    table = catalog.tables.get(policy.table_oid)
    return f"policy {policy.name} on {table.name if table else policy.table_oid}"


# The function every policy reads the tenant with (migration 0008): part of the contract, not a
# user-defined function that could decide out of sight.
CONTRACT_FUNCTIONS = frozenset({f"public.{CURRENT_TENANT_FUNCTION}()"})


@rule("P1", "high", "policy holds a subquery")
def no_subquery(catalog: Catalog) -> Iterator[Issue]:
    """Citus refuses a subquery in a policy on a distributed table, even the initPlan form
    `(SELECT current_setting(...))` that reads no table: the table cannot be distributed, and a
    policy changed on one that is fails. The contract reads the tenant with
    `tenantry_current_tenant()`, a STABLE SQL function the planner inlines into the bare expression,
    which an index scan still evaluates once per statement."""
    for policy in catalog.policies:
        nested = [clause for clause, expr in _expressions(policy) if has_subquery(expr)]
        if nested:
            yield Issue(
                _where(catalog, policy),
                f"{' and '.join(nested)} hold a (SELECT ...) subquery, which Citus refuses in a policy",
                f"write the value as public.{CURRENT_TENANT_FUNCTION}()",
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
        functions = [name for name in policy.functions if name not in CONTRACT_FUNCTIONS]
        if functions:
            reasons.append(f"it calls {', '.join(functions)}")
        if reasons:
            yield Issue(
                _where(catalog, policy),
                "; ".join(reasons),
                "compare the row's own columns with transaction settings only; move membership or status "
                "checks into the code that sets the tenant",
            )


RULES = (no_subquery, no_subqueries)
