"""The probe report for people (grouped by severity) and for machines (--json), as `tenantry audit` does."""

from __future__ import annotations

import msgspec

from tenantry.tools.probe.findings import SEVERITIES, ProbeReport
from tenantry.tools.reports import by_severity, count, detail, severity_tally


def summary(report: ProbeReport) -> str:
    checked = report.checked
    not_served = f" ({len(checked.not_served)} not served)" if checked.not_served else ""
    line = (
        f"{count(len(checked.probed), 'route')} of {len(checked.routes)}{not_served} probed with "
        f"{count(checked.requests, 'request')} ({count(checked.comparisons, 'comparison')}): "
        f"{count(len(report.findings), 'finding')}"
    )
    return line + severity_tally(report.findings, SEVERITIES)


def render_text(report: ProbeReport) -> str:
    checked = report.checked
    lines = [
        f"tenantry probe of {checked.target}",
        f"workspaces: A {checked.workspaces.get('a')}, B {checked.workspaces.get('b')} (purged afterwards)",
    ]
    lines += by_severity(
        report.findings,
        SEVERITIES,
        lambda finding: [
            f"  {finding.check}  {finding.route}",
            f"      {finding.title}",
            *detail(finding.message, break_long_words=True),  # messages quote long URLs and bodies
        ],
    )
    if report.notes:
        lines += ["", f"NOTES ({len(report.notes)})"]
        lines += [f"  {note}" for note in report.notes]
    lines += ["", summary(report)]
    return "\n".join(lines)


def render_json(report: ProbeReport) -> str:
    return msgspec.json.format(msgspec.json.encode(report).decode(), indent=2)


def exit_code(report: ProbeReport) -> int:
    """0 when clean, 1 when there is any finding (2, for errors, is the CLI's)."""
    return 0 if report.ok else 1
