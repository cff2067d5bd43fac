"""The audit: read the catalog once, run every rule over it, and collect the findings."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantry.tools.catalog_audit import (
    citus_rules,
    function_rules,
    key_rules,
    policy_rules,
    role_rules,
    table_rules,
    view_rules,
)
from tenantry.tools.catalog_audit.catalog import APP_SCHEMA, AuditRoles, Catalog
from tenantry.tools.catalog_audit.findings import SEVERITIES, Finding, Rule
from tenantry.tools.catalog_audit.queries import load_catalog

# Every rule, in report order within a severity.
RULES: tuple[Rule, ...] = (
    *table_rules.TENANT_TABLE_RULES,
    *policy_rules.RULES,
    *key_rules.RULES,
    *role_rules.RULES,
    *function_rules.RULES,
    *view_rules.RULES,
    *table_rules.GLOBAL_TABLE_RULES,
    *citus_rules.RULES,
)


class TableDistribution(msgspec.Struct, frozen=True, kw_only=True):
    """One table as Citus keeps it: the kind, the distribution column, the colocation group."""

    table: str
    kind: str  # distributed, reference, citus local, single shard, append, range, local
    column: str | None
    colocation_id: int | None
    shards: int


class CitusChecked(msgspec.Struct, frozen=True, kw_only=True):
    """What the Citus rules looked at; `cluster` false means C1-C4 did not apply (`status` says why)."""

    cluster: bool
    status: str
    workers: int
    tables: list[TableDistribution]
    propagate_set_commands: str | None


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """What the audit looked at, so a clean report can be told from an empty one."""

    database: str
    server_version: str
    schema: str
    roles: dict[str, str]
    rules: list[str]
    tenant_tables: list[str]
    global_tables: list[str]
    policies: int
    foreign_keys: int
    definer_functions: int
    views: int
    citus: CitusChecked


class AuditReport(msgspec.Struct, frozen=True, kw_only=True):
    """The --json shape: {"ok": bool, "checked": {...}, "findings": [...]}."""

    ok: bool
    checked: Checked
    findings: list[Finding]

    @property
    def rule_ids(self) -> set[str]:
        return {f.rule for f in self.findings}


def audit_catalog(catalog: Catalog, rules: Iterable[Rule] = RULES) -> AuditReport:
    """Run `rules` over a catalog snapshot; findings sorted by severity, then rule, then object."""
    rules = tuple(rules)
    order = {r.id: i for i, r in enumerate(rules)}
    findings = [finding for r in rules for finding in r.run(catalog)]
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), order[f.rule], f.object, f.message))
    checked = Checked(
        database=catalog.database,
        server_version=catalog.server_version,
        schema=catalog.schema,
        roles={"tenant": catalog.roles.tenant, "app": catalog.roles.app, "owner": catalog.roles.owner},
        rules=[r.id for r in rules],
        tenant_tables=[t.name for t in catalog.tenant_tables],
        global_tables=[t.name for t in catalog.global_tables],
        policies=len(catalog.policies),
        foreign_keys=len(catalog.foreign_keys),
        definer_functions=len(catalog.definer_functions),
        views=len(catalog.views),
        citus=_citus_checked(catalog),
    )
    return AuditReport(ok=not findings, checked=checked, findings=findings)


def _citus_checked(catalog: Catalog) -> CitusChecked:
    citus = catalog.citus
    tables = []
    if citus.cluster:
        for table in sorted(catalog.tables.values(), key=lambda t: t.name):
            placed = citus.of(table)
            tables.append(
                TableDistribution(
                    table=table.name,
                    kind=placed.kind,
                    column=placed.column,
                    colocation_id=placed.colocation_id,
                    shards=placed.shards,
                )
            )
    return CitusChecked(
        cluster=citus.cluster,
        status=citus.status,
        workers=citus.workers,
        tables=tables,
        propagate_set_commands=citus.propagate_set_commands,
    )


async def audit_database(
    connection: AsyncConnection,
    roles: AuditRoles,
    *,
    schema: str = APP_SCHEMA,
    allowed_definers: Iterable[str] = (),
) -> AuditReport:
    """Audit the database `connection` is on, as configured with `roles`.

    Reads the catalog inside the connection's current transaction (so a test can break the schema
    and audit it before rolling back) and changes nothing. Raises `AuditError` when the database
    cannot be audited: a configured role is missing, or the schema has no tenant table.
    """
    catalog = await load_catalog(connection, roles, schema=schema, allowed_definers=allowed_definers)
    return audit_catalog(catalog)
