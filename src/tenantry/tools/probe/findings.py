"""What the prober reports: findings (any one fails the run) and the report around them."""

from __future__ import annotations

from typing import Literal

import msgspec

Severity = Literal["critical", "high", "medium"]
# Report order, worst first. critical: A saw B's data or changed it; high: an answer tells B's
# ids apart from random ones, or a tenant-selecting input was not refused; medium: a route the
# prober could not check (unprobed, or missing from the OpenAPI document).
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium")

CHECKS: dict[str, tuple[Severity, str]] = {
    "leak": ("critical", "An answer to workspace A carries workspace B's data"),
    "changed": ("critical", "Workspace B's data changed while A probed it"),
    "changed-rows": ("critical", "Workspace B's rows changed in the database while A probed it"),
    "foreign-id": ("high", "B's id in the path answers unlike a random id"),
    "foreign-reference": ("high", "B's id in the body or query answers unlike a random id"),
    "foreign-cursor": ("high", "B's cursor answers unlike a forged one"),
    "idempotency-key": ("high", "B's Idempotency-Key changes A's answer"),
    "tenant-header": ("high", "A tenant-selecting header changes the answer"),
    "tenant-query": ("high", "A tenant-selecting query parameter is not refused"),
    "control-failed": ("medium", "A's own valid request failed, so the route could not be probed"),
    "unprobed-route": ("medium", "A tenant route was not probed"),
    "undocumented-route": ("medium", "A served tenant route is missing from the OpenAPI document"),
    "unserved-route": ("medium", "A documented tenant route is not served"),
}


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    check: str
    severity: Severity
    title: str
    route: str
    message: str

    @classmethod
    def of(cls, check: str, route: object, message: str) -> Finding:
        severity, title = CHECKS[check]
        return cls(check=check, severity=severity, title=title, route=str(route), message=message)


class Checked(msgspec.Struct, kw_only=True):
    target: str
    workspaces: dict[str, str]
    routes: list[str]
    # Probed: A's own request succeeded and some comparison got more than 401/403/405 answers.
    probed: list[str]
    # HEAD routes answering 405 to A's own request: discovered, not served, not probed.
    not_served: list[str] = []
    requests: int
    # Comparisons that told something (not all answers 401/403/405).
    comparisons: int = 0


class ProbeReport(msgspec.Struct, kw_only=True):
    ok: bool
    checked: Checked
    findings: list[Finding]
    notes: list[str]
