"""The probe's state: the two workspaces, every request A makes, and what each answer revealed.

Every request workspace A makes goes through `ProbeSession.send`, which scans the answer for B's
secrets; the checks (checks.py) decide what to send and what must be equal, and tell
`ProbeSession.compared` each comparison they made. A route counts as probed only once a comparison
of it told something: answers that are all 401, 403 or 405 would be equal whatever the ids were.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from tenantry.tools.probe.answers import Answer, leaked
from tenantry.tools.probe.discovery import Route
from tenantry.tools.probe.findings import Finding
from tenantry.tools.probe.samples.base import BodyBuilder, Ids, QueryBuilder, Use
from tenantry.tools.probe.workspaces import ProbeWorkspace

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NO_BODY: Any = object()
# Refusals before the route looks at any id: two of them are equal whoever's ids were sent.
UNINFORMATIVE = frozenset({401, 403, 405})


@dataclass
class Party:
    """One probe workspace: A probes, B is probed."""

    name: str
    workspace: ProbeWorkspace
    marker: str
    ids: dict[str, str] = field(default_factory=dict)
    uses: dict[Route, Use] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.workspace.token}"}


class RecordingIds(Mapping[str, str]):
    """The ids a builder is given, remembering which names it read."""

    def __init__(self, ids: Mapping[str, str]) -> None:
        self.ids = ids
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.ids[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def references(use: Use, ids: Ids) -> set[str]:
    """The ids a route's body and query carry, by name."""
    recorder = RecordingIds(ids)
    build_body(use.body, recorder)
    build_query(use.query, recorder)
    return recorder.read


def build_body(builder: BodyBuilder | None, ids: Ids) -> Any:
    return NO_BODY if builder is None else builder(ids)


def build_query(builder: QueryBuilder | None, ids: Ids) -> dict[str, str]:
    return {} if builder is None else dict(builder(ids))


def fill(path: str, ids: Ids) -> str:
    return re.sub(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}", lambda m: ids[m.group(1)], path)


def random_id() -> str:
    return str(uuid.uuid4())


def uuids_in(document: Any) -> set[str]:
    """Every uuid-shaped string in a JSON document."""
    if isinstance(document, dict):
        return set().union(*(uuids_in(v) for v in document.values())) if document else set()
    if isinstance(document, list):
        return set().union(*(uuids_in(v) for v in document)) if document else set()
    return {document.lower()} if isinstance(document, str) and _UUID.match(document) else set()


@dataclass
class ProbeSession:
    http: httpx.AsyncClient
    document: Mapping[str, Any]
    a: Party
    b: Party
    secrets: dict[str, str] = field(default_factory=dict)  # value -> what it is
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probed: set[Route] = field(default_factory=set)
    # Routes whose control request failed: reported once as such, not again as unprobed.
    failed_control: set[Route] = field(default_factory=set)
    # HEAD routes that answer 405 to A's own valid request: the app does not serve them.
    not_served: set[Route] = field(default_factory=set)
    requests: int = 0
    comparisons: int = 0

    def report(self, check: str, route: object, message: str) -> None:
        self.findings.append(Finding.of(check, route, message))

    def compared(self, route: Route, *answers: Answer) -> None:
        """Count a check's answers as probing `route`, unless each is a refusal that ignores ids."""
        if any(answer.status not in UNINFORMATIVE for answer in answers):
            self.comparisons += 1
            self.probed.add(route)

    async def send(
        self,
        party: Party,
        route: Route,
        ids: Ids,
        *,
        body: Any = NO_BODY,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        path = fill(route.path, ids)
        all_headers = {**party.headers, **(headers or {})}
        content = None if body is NO_BODY else json.dumps(body).encode()
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        response = await self.http.request(
            route.method, path, params=dict(query or {}), content=content, headers=all_headers
        )
        self.requests += 1
        answer = Answer.of(response)
        if party is self.a:
            sent = " ".join(
                [
                    path,
                    urlencode(dict(query or {})),
                    *(query or {}).values(),
                    *all_headers.values(),
                    (content or b"").decode(),
                ]
            )
            if found := leaked(answer, self.secrets, sent):
                self.report(
                    "leak",
                    route,
                    f"{path} answered {answer.summary()} carrying " + "; ".join(found) + f": {answer.text[:200]!r}",
                )
        return answer
