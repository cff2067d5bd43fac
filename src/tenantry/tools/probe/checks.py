"""The checks, per route. Each sends requests as A and says what must hold of the answers.

Every route starts with a control: A's own valid request (A's ids, a valid body) must succeed.
Were it refused (a token without the right, a sample body gone invalid), B's ids and random ids
would meet the same refusal and every comparison would pass without testing anything. A failed
control is a finding ("control-failed") and the route's other checks are skipped; a HEAD route
answering 405 is noted as not served. Routes that consume their object (`Use.fresh`) get a new one
for the control and for every other request of A's own that must succeed.

Phase one leaves A's sample objects in place, so every check meets them as the factories made
them: B's ids in the path, B's ids in bodies and queries, B's cursors, B's Idempotency-Keys.
Phase two then sends A's own valid requests with tenant-selecting headers, query parameters and
body fields naming B; those requests may change A's objects (delete, revoke), so they run last.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping

from tenantry.tools.probe.answers import Answer, comparable, difference
from tenantry.tools.probe.discovery import Route, query_parameters
from tenantry.tools.probe.samples.base import Ids, Use
from tenantry.tools.probe.session import (
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


def _reads(route: Route) -> bool:
    return route.method in ("GET", "HEAD")


async def own_ids(session: ProbeSession, use: Use) -> dict[str, str]:
    """A's ids, with a new object's in place of the sample's if the route consumes its object."""
    ids = dict(session.a.ids)
    if use.fresh is not None:
        ids.update(await use.fresh(ids))
    return ids


async def _send_own(
    session: ProbeSession, route: Route, use: Use, ids: Ids, headers: Mapping[str, str] | None = None
) -> Answer:
    """A's valid request for the route, built from `ids`."""
    return await session.send(
        session.a, route, ids, body=build_body(use.body, ids), query=build_query(use.query, ids), headers=headers
    )


async def control(session: ProbeSession, route: Route, use: Use) -> Answer | None:
    """A's own valid request, which must succeed (2xx): None, and a finding or note, if it did not."""
    answer = await _send_own(session, route, use, await own_ids(session, use))
    if 200 <= answer.status < 300:
        return answer
    if route.method == "HEAD" and answer.status == 405:
        session.not_served.add(route)
        session.notes.append(f"{route}: answers 405 to A's own request: not served, so not probed")
    else:
        session.failed_control.add(route)
        session.report(
            "control-failed",
            route,
            f"control request failed: cannot probe: A's own request answered {answer.summary()}",
        )
    return None


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
        session.compared(route, answer_b, answer_r)
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
        # The path names A's own object: a new one each time if a request could consume it.
        own_b, own_r = await own_ids(session, use), await own_ids(session, use)
        foreign, random = {**own_b, name: b.ids[name]}, {**own_r, name: random_id()}
        answer_b = await session.send(
            a, route, own_b, body=build_body(use.body, foreign), query=build_query(use.query, foreign)
        )
        answer_r = await session.send(
            a, route, own_r, body=build_body(use.body, random), query=build_query(use.query, random)
        )
        session.compared(route, answer_b, answer_r)
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
    session.compared(route, answer_b, answer_f)
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
    session.compared(route, same, answer_k, answer_f)
    if not _same(answer_k, answer_f, [], strict=False):
        session.report("idempotency-key", route, f"B's key vs a fresh one: {difference(answer_k, answer_f)}")


async def tenant_inputs(session: ProbeSession, route: Route, use: Use) -> None:
    """A's own valid request naming B in headers, query and body: refused or ignored, never honoured.

    With B's workspace in the headers, a read must answer exactly as the control did, and a write
    with the control's status: a write run in B would not find A's object there (404), and leave
    B unchanged, so only its own answer shows it. Each header variant of a write meets a new
    object if the route consumes it. The query variants must be refused (400) before anything
    happens, so they reuse the sample's object: one that ran anyway is a finding for that.
    """
    a, b = session.a, session.b
    baseline = await control(session, route, use)
    if baseline is None:
        return
    for value in (b.workspace.id, b.workspace.slug):
        headers = dict.fromkeys(TENANT_HEADERS, value)
        answer = await _send_own(session, route, use, await own_ids(session, use), headers=headers)
        session.compared(route, baseline, answer)
        # A write's body has new ids and times each time: its status (and problem type) must match.
        if not _same(baseline, answer, [], strict=_reads(route)):
            session.report("tenant-header", route, f"with B's workspace in headers: {difference(baseline, answer)}")
    query = build_query(use.query, a.ids)
    for name in TENANT_QUERY:
        answer = await session.send(
            a, route, a.ids, body=build_body(use.body, a.ids), query={**query, name: b.workspace.id}
        )
        session.compared(route, answer)
        if answer.status != 400:
            session.report("tenant-query", route, f"?{name}=<B's workspace> answered {answer.summary()}, not 400")
    ids = await own_ids(session, use)
    body = build_body(use.body, ids)
    if body is not NO_BODY and isinstance(body, dict):
        # Refused (422) or ignored are both fine; honoured shows in B's snapshot and the leak scan.
        await session.send(
            a,
            route,
            ids,
            body={**body, **dict.fromkeys(TENANT_BODY_FIELDS, b.workspace.id)},
            query=build_query(use.query, ids),
        )
