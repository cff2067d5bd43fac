"""Comparing answers, and scanning them for another workspace's data.

Two answers are "equal" when their status, the headers that carry meaning (Content-Type, Allow,
WWW-Authenticate, X-Accepted-Permissions, Idempotent-Replayed) and their bodies are, after
(1) the ids the request itself carried are replaced by one placeholder (a random id and B's id
must read the same) and (2) the per-request fields are dropped: `request_id` (only 500 bodies carry
it, see core/problems.py) and `instance` (RFC 9457 allows it; this app sends none today).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

PER_REQUEST_FIELDS = frozenset({"request_id", "instance"})
# Changes whenever a token is used, including by the snapshot's own requests.
USAGE_FIELDS = frozenset({"last_used_at"})
COMPARED_HEADERS = ("content-type", "allow", "www-authenticate", "x-accepted-permissions", "idempotent-replayed")
PLACEHOLDER = "{sent}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        headers = tuple((name.lower(), value) for name, value in response.headers.multi_items())
        return cls(response.status_code, headers, response.content)

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def problem_type(self) -> str | None:
        document = self.json()
        return document.get("type") if isinstance(document, dict) else None

    def summary(self) -> str:
        kind = self.problem_type
        return f"{self.status} {kind.rsplit('/', 1)[-1]}" if kind else str(self.status)


def without(document: Any, names: frozenset[str]) -> Any:
    """The JSON document with every property of these names dropped, at any depth."""
    if isinstance(document, dict):
        return {k: without(v, names) for k, v in document.items() if k not in names}
    if isinstance(document, list):
        return [without(v, names) for v in document]
    return document


def comparable(answer: Answer, sent: Iterable[str] = (), *, strict: bool = True) -> tuple[Any, ...]:
    """What must match between two answers; lenient keeps the status and problem type only."""
    if not strict:
        return answer.status, answer.problem_type, answer.header("idempotent-replayed")
    text = answer.text
    for value in sorted(set(sent), key=len, reverse=True):
        if value:
            text = text.replace(value, PLACEHOLDER)
    try:
        body: Any = without(json.loads(text), PER_REQUEST_FIELDS)
    except ValueError:
        body = text
    headers = tuple((name, answer.header(name)) for name in COMPARED_HEADERS)
    return answer.status, headers, body


def difference(first: Answer, second: Answer) -> str:
    """A short account of how two answers differ, for the report."""
    if first.status != second.status or first.problem_type != second.problem_type:
        return f"{first.summary()} vs {second.summary()}"
    for name in COMPARED_HEADERS:
        if first.header(name) != second.header(name):
            return f"header {name}: {first.header(name)!r} vs {second.header(name)!r}"
    return f"bodies differ: {first.text[:160]!r} vs {second.text[:160]!r}"


def leaked(answer: Answer, secrets: Mapping[str, str], sent: str) -> list[str]:
    """The labels of the secrets found in the answer (body and headers), except what A sent itself.

    A value A put in its own request (B's id in a path, B's cursor) may come back in an error
    without anything leaking; an answer that *acts* on it is caught by the equality checks.
    """
    haystack = (answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers)).lower()
    sent = sent.lower()
    return sorted(
        {label for value, label in secrets.items() if value.lower() in haystack and value.lower() not in sent}
    )
