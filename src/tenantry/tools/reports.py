"""Wording shared by the text reports of `tenantry audit` and `tenantry probe`."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

WIDTH = 100


class HasSeverity(Protocol):
    @property
    def severity(self) -> str: ...


F = TypeVar("F", bound=HasSeverity)


def count(n: int, noun: str) -> str:
    """`1 finding`, `3 findings`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def severity_tally(findings: Sequence[HasSeverity], severities: Iterable[str]) -> str:
    """` (2 critical, 1 high)`, most severe first; empty when there is nothing to tally."""
    tally = [(severity, sum(f.severity == severity for f in findings)) for severity in severities]
    named = ", ".join(f"{n} {severity}" for severity, n in tally if n)
    return f" ({named})" if named else ""


def by_severity(findings: Sequence[F], severities: Iterable[str], describe: Callable[[F], list[str]]) -> list[str]:
    """One section per severity that has findings, most severe first, each finding described."""
    lines: list[str] = []
    for severity in severities:
        group = [finding for finding in findings if finding.severity == severity]
        if group:
            lines += ["", f"{severity.upper()} ({len(group)})"]
            for finding in group:
                lines += describe(finding)
    return lines


def detail(text: str, *, break_long_words: bool = False) -> list[str]:
    """A finding's explanation, wrapped and indented under its heading."""
    return textwrap.wrap(
        text, WIDTH, initial_indent="      ", subsequent_indent="        ", break_long_words=break_long_words
    )
