"""Wording shared by the text reports of `tenantry audit` and `tenantry probe`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class HasSeverity(Protocol):
    @property
    def severity(self) -> str: ...


def count(n: int, noun: str) -> str:
    """`1 finding`, `3 findings`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def severity_tally(findings: Sequence[HasSeverity], severities: Iterable[str]) -> str:
    """` (2 critical, 1 high)`, most severe first; empty when there is nothing to tally."""
    tally = [(severity, sum(f.severity == severity for f in findings)) for severity in severities]
    named = ", ".join(f"{n} {severity}" for severity, n in tally if n)
    return f" ({named})" if named else ""
