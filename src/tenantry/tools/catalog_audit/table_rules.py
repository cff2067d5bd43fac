"""Rules on tenant tables themselves (T1-T4) and on global tables (G1).

A tenant table is every ordinary or partitioned table of the app schema with a tenant_id column;
every other table there is global, except Alembic's and the policy checksums' bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import COMMANDS, TENANT_COLUMN, Catalog, Policy, Table, quote_ident
from tenantry.tools.catalog_audit.expressions import CURRENT_TENANT_FUNCTION, is_tenant_scoped
from tenantry.tools.catalog_audit.findings import Issue, rule

TENANT_VALUE = f"public.{CURRENT_TENANT_FUNCTION}()"


def tenant_policy_sql(table: str, tenant_role: str, name: str = "tenant_isolation") -> str:
    """The policy of contract rule 2 (docs/security.md), as the fix for a table that lacks it."""
    condition = f"{TENANT_COLUMN} = {TENANT_VALUE}"
    return (
        f'CREATE POLICY {quote_ident(name)} ON {table} AS PERMISSIVE FOR ALL TO "{tenant_role}" '
        f"USING ({condition}) WITH CHECK ({condition});"
    )


@rule("T1", "critical", "tenant table without ENABLE ROW LEVEL SECURITY")
def rls_enabled(catalog: Catalog) -> Iterator[Issue]:
    """Without ENABLE, no policy applies: the tenant role reads and writes every workspace's rows
    its grants allow. This is the wall itself."""
    for table in catalog.tenant_tables:
        if not table.rls_enabled:
            yield Issue(
                table.name,
                "row-level security is not enabled, so no policy applies and every workspace's rows are reachable",
                f"ALTER TABLE {table.name} ENABLE ROW LEVEL SECURITY;",
            )


@rule("T2", "high", "tenant table without FORCE ROW LEVEL SECURITY")
def rls_forced(catalog: Catalog) -> Iterator[Issue]:
    """Without FORCE, the table's owner bypasses the policies, and so does everything that runs
    with the owner's rights: SECURITY DEFINER functions and views that are not security_invoker.
    FORCE makes the owner bound too, so those paths see only what owner policies allow."""
    for table in catalog.tenant_tables:
        if not table.rls_forced:
            yield Issue(
                table.name,
                "row-level security is not forced: the owner, and every SECURITY DEFINER function or "
                "definer view it owns, reads past the policies",
                f"ALTER TABLE {table.name} FORCE ROW LEVEL SECURITY;",
            )


def _applies_to_tenant(policy: Policy, tenant_roles: set[str]) -> bool:
    return "public" in policy.roles or bool(policy.roles & tenant_roles)


def _commands(policy: Policy) -> set[str]:
    return set(COMMANDS) if policy.command == "ALL" else {policy.command}


def _policy_problems(policy: Policy) -> list[str]:
    problems = []
    if policy.command != "INSERT":
        if policy.using is None:
            problems.append("has no USING")
        elif not is_tenant_scoped(policy.using):
            problems.append(f"USING ({policy.using}) does not restrict {TENANT_COLUMN} to the tenant setting")
    if policy.command in ("ALL", "INSERT", "UPDATE"):
        if policy.with_check is None:
            problems.append("has no WITH CHECK")
        elif not is_tenant_scoped(policy.with_check):
            problems.append(f"WITH CHECK ({policy.with_check}) does not restrict {TENANT_COLUMN} to the tenant setting")
    return problems


@rule("T3", "critical", "tenant table without a complete tenant policy for the tenant role")
def tenant_policy(catalog: Catalog) -> Iterator[Issue]:
    """The tenant role needs permissive policies that cover SELECT, INSERT, UPDATE and DELETE (one
    FOR ALL policy, or one per command), each restricting tenant_id to the tenant setting in both
    USING and WITH CHECK. Permissive policies are OR-ed, so any looser permissive policy that
    applies to the tenant role (to it, to PUBLIC, or to a role it inherits from) opens the table;
    restrictive policies only narrow, so they never count as the tenant policy."""
    tenant_roles = {catalog.roles.tenant} | {r.name for r in catalog.reachable(catalog.roles.tenant, via="inherit")}
    by_table: dict[int, list[Policy]] = {}
    for policy in catalog.policies:
        if _applies_to_tenant(policy, tenant_roles):
            by_table.setdefault(policy.table_oid, []).append(policy)

    for table in catalog.tenant_tables:
        applying = by_table.get(table.oid, [])
        permissive = [p for p in applying if p.permissive]
        if not permissive:
            if applying:
                message = (
                    f"only RESTRICTIVE policies apply to {catalog.roles.tenant}: they narrow permissive policies "
                    "and grant nothing on their own, so the tenant policy is missing"
                )
            else:
                message = f"no policy applies to {catalog.roles.tenant}"
            yield Issue(table.name, message, tenant_policy_sql(table.name, catalog.roles.tenant))
            continue
        problems = {policy.name: _policy_problems(policy) for policy in permissive}
        covered = {c for p in permissive for c in _commands(p)}
        sound = {c for p in permissive if not problems[p.name] for c in _commands(p)}
        for policy in permissive:
            if not problems[policy.name]:
                continue
            drop = f"DROP POLICY {quote_ident(policy.name)} ON {table.name};"
            if _commands(policy) <= sound:  # a looser policy next to sound ones: permissive policies are OR-ed
                fix = f"{drop} (or recreate it AS RESTRICTIVE, which can only narrow the tenant policy)"
            else:  # it is the tenant policy, written wrong
                fix = f"{drop} {tenant_policy_sql(table.name, catalog.roles.tenant, policy.name)}"
            yield Issue(
                f"policy {policy.name} on {table.name}",
                f"permissive policy FOR {policy.command} " + "; ".join(problems[policy.name]),
                fix,
            )
        missing = [c for c in COMMANDS if c not in covered]
        if missing:
            yield Issue(
                table.name,
                f"no permissive policy for {catalog.roles.tenant} covers {', '.join(missing)}",
                tenant_policy_sql(table.name, catalog.roles.tenant),
            )


@rule("T4", "high", "tenant_id is not uuid NOT NULL")
def tenant_column(catalog: Catalog) -> Iterator[Issue]:
    """A row whose tenant_id is NULL belongs to no workspace: no tenant policy matches it, no
    purge or export finds it, and Citus cannot place it on a shard."""
    for table in catalog.tenant_tables:
        column = table.columns[table.tenant_attnum]  # type: ignore[index]
        fixes = []
        if column.type != "uuid":
            fixes.append(
                f"ALTER TABLE {table.name} ALTER COLUMN {TENANT_COLUMN} TYPE uuid USING {TENANT_COLUMN}::uuid;"
            )
        if not column.not_null:
            fixes.append(f"ALTER TABLE {table.name} ALTER COLUMN {TENANT_COLUMN} SET NOT NULL;")
        if fixes:
            yield Issue(
                table.name,
                f"{TENANT_COLUMN} is {column.type}{' NOT NULL' if column.not_null else ' and nullable'}",
                " ".join(fixes),
            )


@rule("G1", "high", "global table references a tenant table")
def global_references_tenant(catalog: Catalog) -> Iterator[Issue]:
    """Global tables become Citus reference or local tables, which may not reference a sharded
    tenant table; and a global row pointing at tenant rows ties data that must stay a workspace's
    own (purge, export) to rows no tenant policy guards. Reference the other way round."""
    global_oids = {t.oid for t in catalog.global_tables}
    for fk in catalog.foreign_keys:
        target = catalog.tables.get(fk.ref_table_oid)
        if fk.table_oid in global_oids and target is not None and target.is_tenant:
            source: Table = catalog.tables[fk.table_oid]
            yield Issue(
                f"foreign key {fk.name} on {source.name}",
                f"the global table {source.name} references the tenant table {target.name} "
                f"({', '.join(fk.column_names)})",
                f"ALTER TABLE {source.name} DROP CONSTRAINT {quote_ident(fk.name)}; keep the link in a tenant table instead",
            )


TENANT_TABLE_RULES = (rls_enabled, rls_forced, tenant_policy, tenant_column)
GLOBAL_TABLE_RULES = (global_references_tenant,)
