"""The checks, per route. Each sends requests as A and says what must hold of the answers.

Phase one leaves A's sample objects in place, so every check meets them as the factories made
them: B's ids in the path, B's ids in bodies and queries, B's cursors, B's Idempotency-Keys.
Phase two then sends A's own valid requests with tenant-selecting headers, query parameters and
body fields naming B; those requests may change A's objects (delete, revoke), so they run last.
"""

from __future__ import annotations

import base64
import json
import uuid

from tenantry.probe.answers import Answer, comparable, difference
from tenantry.probe.discovery import Route, query_parameters
from tenantry.probe.samples import Use
from tenantry.probe.session import (
    NO_BODY,
    ProbeSession,
    build_body,
    build_query,
    random_id,
    references,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Headers and query parameters other systems select a tenant with; none may move A into B.
TENANT_HEADERS = (
    "X-Tenant-Id",
    "X-Tenant",
    "Tenant",
    "Tenant-Id",
    "X-Workspace-Id",
    "X-Workspace",
    "Workspace",
    "X-Org-Id",
    "X-Organization-Id",
    "X-Account-Id",
)
TENANT_QUERY = ("tenant_id", "tenant", "workspace_id", "workspace", "org_id", "organization_id", "account_id")
TENANT_BODY_FIELDS = ("tenant_id", "workspace_id")
_KEY_PROBLEMS = ("idempotency-key-reused", "idempotency-key-in-progress")


def _same(first: Answer, second: Answer, sent: list[str], *, strict: bool = True) -> bool:
    return comparable(first, sent, strict=strict) == comparable(second, sent, strict=strict)


async def foreign_path(session: ProbeSession, route: Route, use: Use) -> None:
    """B's ids in the path (each alone, then all) must answer like random ids."""
    parameters = route.parameters
    if not parameters:
        return
    a, b = session.a, session.b
    variants = [parameters] if len(parameters) == 1 else [parameters, *((p,) for p in parameters)]
    body, query = build_body(use.body, a.ids), build_query(use.query, a.ids)
    for swapped in variants:
        foreign = {**a.ids, **{p: b.ids[p] for p in swapped}}
        random = {**a.ids, **{p: random_id() for p in swapped}}
        answer_b = await session.send(a, route, foreign, body=body, query=query)
        answer_r = await session.send(a, route, random, body=body, query=query)
        sent = [foreign[p] for p in swapped] + [random[p] for p in swapped]
        if not _same(answer_b, answer_r, sent):
            session.report(
                "foreign-id",
                route,
                f"B's {', '.join(swapped)} vs a random one: {difference(answer_b, answer_r)}",
            )


async def foreign_references(session: ProbeSession, route: Route, use: Use) -> None:
    """Each id a body or query carries, swapped for B's, must answer like a random id."""
    a, b = session.a, session.b
    for name in sorted(references(use, a.ids)):
        if name not in b.ids:
            session.notes.append(f"{route}: B has no {name}; that reference was not probed")
            continue
        foreign, random = {**a.ids, name: b.ids[name]}, {**a.ids, name: random_id()}
        answer_b = await session.send(
            a, route, a.ids, body=build_body(use.body, foreign), query=build_query(use.query, foreign)
        )
        answer_r = await session.send(
            a, route, a.ids, body=build_body(use.body, random), query=build_query(use.query, random)
        )
        if not _same(answer_b, answer_r, [foreign[name], random[name]]):
            session.report("foreign-reference", route, f"B's {name} vs a random one: {difference(answer_b, answer_r)}")


def forge_cursor(cursor: str) -> str:
    """A cursor of the same shape that nobody was given: another position under the same signature."""
    payload = base64.urlsafe_b64encode(json.dumps({"after": random_id()}).encode()).rstrip(b"=").decode()
    return payload + "." + cursor.split(".", 1)[1] if "." in cursor else payload


def lists_with_cursors(session: ProbeSession, route: Route) -> bool:
    return route.method == "GET" and "cursor" in query_parameters(session.document, route)


async def b_cursor(session: ProbeSession, route: Route) -> str | None:
    """A next cursor from B's own list (limit 1), fetched before B's snapshot: B's requests stamp its token."""
    b = session.b
    page = await session.send(b, route, b.ids, query={"limit": "1"})
    document = page.json()
    cursor = document.get("next_cursor") if isinstance(document, dict) else None
    if not isinstance(cursor, str) or not cursor:
        session.notes.append(f"{route}: B's list gave no next cursor ({page.summary()}); cursors not probed")
        return None
    return cursor


async def foreign_cursor(session: ProbeSession, route: Route, cursor: str) -> None:
    """B's cursor used by A on the same list must answer like a forged one."""
    a = session.a
    forged = forge_cursor(cursor)
    answer_b = await session.send(a, route, a.ids, query={"limit": "1", "cursor": cursor})
    answer_f = await session.send(a, route, a.ids, query={"limit": "1", "cursor": forged})
    if not _same(answer_b, answer_f, [cursor, forged]):
        session.report("foreign-cursor", route, f"B's cursor vs a forged one: {difference(answer_b, answer_f)}")


def takes_idempotency_key(route: Route) -> bool:
    """Creations: a POST without ids, whose stored answer is a new object of the caller's."""
    return route.method == "POST" and not route.parameters


async def store_b_idempotent_requests(session: ProbeSession, route: Route) -> tuple[str, str, object] | None:
    """B sends the creation twice, under two keys of its own (before B's snapshot: it adds to B).

    Two keys, because A's first request under a key makes that key A's too (in A's scope). The
    bodies carry B's ids but A's marker (A's builders): A repeats one verbatim, and what that
    creates in A must not carry B's marker, or the leak scan would flag A's own doing.
    """
    a, b = session.a, session.b
    use = a.uses[route]
    keys, body = [], NO_BODY
    for _ in range(2):
        key, body = f"probe-{uuid.uuid4().hex}", build_body(use.body, b.ids)
        answer = await session.send(b, route, b.ids, body=body, headers={IDEMPOTENCY_HEADER: key})
        if not 200 <= answer.status < 300:
            session.notes.append(f"{route}: B's request under an Idempotency-Key answered {answer.summary()}")
            return None
        keys.append(key)
    return keys[0], keys[1], body


async def foreign_idempotency_key(
    session: ProbeSession, route: Route, use: Use, same_body_key: str, other_key: str, b_body: object
) -> None:
    """A reusing B's keys gets fresh answers of its own, never B's stored ones."""
    a = session.a
    # B's very request, key and body: a shared key space would replay B's answer to A.
    same = await session.send(a, route, a.ids, body=b_body, headers={IDEMPOTENCY_HEADER: same_body_key})
    if same.header("idempotent-replayed") or (same.problem_type or "").endswith(_KEY_PROBLEMS):
        session.report("idempotency-key", route, f"A repeating B's request and key got {same.summary()}, a replay")
    # A's own body under B's other key must answer like A's own body under a fresh key.
    answer_k = await session.send(
        a, route, a.ids, body=build_body(use.body, a.ids), headers={IDEMPOTENCY_HEADER: other_key}
    )
    answer_f = await session.send(
        a, route, a.ids, body=build_body(use.body, a.ids), headers={IDEMPOTENCY_HEADER: f"probe-{uuid.uuid4().hex}"}
    )
    if not _same(answer_k, answer_f, [], strict=False):
        session.report("idempotency-key", route, f"B's key vs a fresh one: {difference(answer_k, answer_f)}")


async def tenant_inputs(session: ProbeSession, route: Route, use: Use) -> None:
    """A's own valid request naming B in headers, query and body: refused or ignored, never honoured."""
    a, b = session.a, session.b
    query = build_query(use.query, a.ids)
    reads = route.method in ("GET", "HEAD")
    baseline = await session.send(a, route, a.ids, body=build_body(use.body, a.ids), query=query) if reads else None
    for value in (b.workspace.id, b.workspace.slug):
        headers = dict.fromkeys(TENANT_HEADERS, value)
        answer = await session.send(a, route, a.ids, body=build_body(use.body, a.ids), query=query, headers=headers)
        if baseline is not None and not _same(baseline, answer, []):
            session.report("tenant-header", route, f"with B's workspace in headers: {difference(baseline, answer)}")
    for name in TENANT_QUERY:
        answer = await session.send(
            a, route, a.ids, body=build_body(use.body, a.ids), query={**query, name: b.workspace.id}
        )
        # Refused: 400 by the allowlist, or the very refusal the request gets without it (HEAD: 405).
        refused_anyway = baseline is not None and baseline.status >= 400 and _same(baseline, answer, [])
        if answer.status != 400 and not refused_anyway:
            session.report("tenant-query", route, f"?{name}=<B's workspace> answered {answer.summary()}, not 400")
    body = build_body(use.body, a.ids)
    if body is not NO_BODY and isinstance(body, dict):
        # Refused (422) or ignored are both fine; honoured shows in B's snapshot and the leak scan.
        await session.send(
            a, route, a.ids, body={**body, **dict.fromkeys(TENANT_BODY_FIELDS, b.workspace.id)}, query=query
        )
