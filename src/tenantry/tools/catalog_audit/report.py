"""The audit report for people (grouped by severity) and for machines (--json)."""

from __future__ import annotations

import msgspec

from tenantry.tools.catalog_audit.audit import AuditReport, CitusChecked
from tenantry.tools.catalog_audit.findings import SEVERITIES
from tenantry.tools.reports import by_severity, count, detail, severity_tally


def summary(report: AuditReport) -> str:
    checked = report.checked
    line = (
        f"{count(len(checked.rules), 'check')} over {count(len(checked.tenant_tables), 'tenant table')}, "
        f"{count(len(checked.global_tables), 'global table')}: {count(len(report.findings), 'finding')}"
    )
    return line + severity_tally(report.findings, SEVERITIES)


def distribution_lines(citus: CitusChecked) -> list[str]:
    """Where Citus keeps each table, or why the Citus rules did not apply."""
    if not citus.cluster:
        return [f"citus: {citus.status}: rules C1-C4 do not apply"]
    lines = [f"citus: {citus.status}; the login role's citus.propagate_set_commands: {citus.propagate_set_commands}"]
    width = max((len(t.table) for t in citus.tables), default=0)
    for table in citus.tables:
        if table.kind == "distributed":
            where = f"distributed by {table.column}, colocation group {table.colocation_id}, {table.shards} shards"
        elif table.kind == "reference":
            where = "reference"
        elif table.kind == "local":
            where = "coordinator-local"
        else:
            where = f"{table.kind}, colocation group {table.colocation_id}, {table.shards} shards"
        lines.append(f"  {table.table.ljust(width)}  {where}")
    return lines


def render_text(report: AuditReport) -> str:
    checked = report.checked
    roles = checked.roles
    lines = [
        f"tenantry audit of database {checked.database} (PostgreSQL {checked.server_version}), schema {checked.schema}",
        f"roles: tenant {roles['tenant']}, app {roles['app']}, owner {roles['owner']}",
        *distribution_lines(checked.citus),
    ]
    lines += by_severity(
        report.findings,
        SEVERITIES,
        lambda finding: [
            f"  {finding.rule}  {finding.object}",
            f"      {finding.title}",
            *detail(finding.message),
            *detail("fix: " + finding.fix),
        ],
    )
    lines += ["", summary(report)]
    return "\n".join(lines)


def render_json(report: AuditReport) -> str:
    return msgspec.json.format(msgspec.json.encode(report).decode(), indent=2)


def exit_code(report: AuditReport) -> int:
    """0 when clean, 1 when there is any finding (2, for errors, is the CLI's)."""
    return 0 if report.ok else 1
