"""What a rule is and what it reports.

A rule is a named check over a `Catalog` snapshot: an id (`T1`), a severity, a one-line title,
and a docstring that says why it matters. It yields `Issue`s; the audit turns each into a
`Finding` carrying the rule's id, severity and title, so the checks themselves stay small.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

if TYPE_CHECKING:
    from tenantry.tools.catalog_audit.catalog import Catalog

Severity = Literal["critical", "high", "medium"]
# Report order, worst first. critical: another workspace's rows are reachable, or the wall can be
# taken down; high: the contract or Citus sharding is broken without an immediate leak; medium:
# correct but slow or fragile.
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium")


class Issue(NamedTuple):
    """One problem a check found: the object, what is wrong with it, and how to fix it."""

    object: str
    message: str
    fix: str


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One issue with the rule that found it: the unit of the report and of the --json output."""

    rule: str
    severity: Severity
    title: str
    object: str
    message: str
    fix: str


Check = Callable[["Catalog"], Iterable[Issue]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    check: Check

    @property
    def why(self) -> str:
        """The check's docstring: what the rule protects against."""
        return inspect.getdoc(self.check) or ""

    def run(self, catalog: Catalog) -> list[Finding]:
        return [
            Finding(rule=self.id, severity=self.severity, title=self.title, object=o, message=m, fix=f)
            for o, m, f in self.check(catalog)
        ]


def rule(rule_id: str, severity: Severity, title: str) -> Callable[[Check], Rule]:
    """Decorate a check function to make it a `Rule`."""

    def make(check: Check) -> Rule:
        return Rule(rule_id, severity, title, check)

    return make
