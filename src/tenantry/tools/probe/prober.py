"""Run the probe: two workspaces, their samples, every check on every tenant route, then the verdict.

1. Make workspaces A and B (admin API) and run every sample factory in each.
2. B sends one request under an Idempotency-Key per creation route; then B's state is snapshotted
   (every GET route B's samples cover, every page) and, if given, the ground truth (DB rows).
3. Phase one and phase two of the checks (checks.py), route by route, as A, each route's checks
   behind a control request of A's own that must succeed (a failed control is a finding, and a
   HEAD route answering 405 is noted as not served).
4. B's state again: it must equal the snapshot (`last_used_at` is left out: B's own snapshot
   requests stamp it on B's token). Any tenant route no request of A's reached is a finding.
5. Purge both workspaces, whatever happened.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tenantry.tools.probe import checks
from tenantry.tools.probe.answers import USAGE_FIELDS, without
from tenantry.tools.probe.discovery import Route, query_parameters
from tenantry.tools.probe.findings import Checked, Finding, ProbeReport
from tenantry.tools.probe.samples.base import SampleError, SampleFactory, TenantApi, Use
from tenantry.tools.probe.session import Party, ProbeSession, uuids_in
from tenantry.tools.probe.workspaces import probe_workspaces

GroundTruth = Callable[[str], Awaitable[Any]]
MAX_SNAPSHOT_PAGES = 50
_METHOD_ORDER = {"GET": 0, "HEAD": 1, "POST": 2, "PUT": 3, "PATCH": 4, "DELETE": 5}


class ProbeError(Exception):
    """The probe could not run (exit 2): not a finding about the app."""


def _order(route: Route) -> tuple[int, str]:
    return _METHOD_ORDER.get(route.method, 9), route.path


async def _make_samples(party: Party, http: httpx.AsyncClient, samples: Sequence[SampleFactory]) -> None:
    api = TenantApi(http, party.workspace.token, party.marker)
    for factory in samples:
        sample = await factory(api, dict(party.ids))
        party.ids.update(sample.ids)
        for key, use in sample.routes.items():
            route = Route.parse(key)
            party.uses[route] = use
            if route.method == "GET":
                party.uses.setdefault(Route("HEAD", route.path), Use(query=use.query))


async def snapshot(session: ProbeSession, party: Party) -> dict[str, list[Any]]:
    """Everything of `party` its own GET routes show, every page, as parsed JSON."""
    seen: dict[str, list[Any]] = {}
    for route in sorted(party.uses, key=_order):
        if route.method != "GET" or not set(route.parameters) <= party.ids.keys():
            continue
        paged = "cursor" in query_parameters(session.document, route)
        query = {"limit": "100"} if paged else {}
        pages: list[Any] = []
        for _ in range(MAX_SNAPSHOT_PAGES):
            answer = await session.send(party, route, party.ids, query=query)
            document = answer.json()
            pages.append([answer.status, without(document, USAGE_FIELDS)])
            cursor = document.get("next_cursor") if paged and isinstance(document, dict) else None
            if not cursor:
                break
            query = {**query, "cursor": cursor}
        seen[str(route)] = pages
    return seen


def _b_secrets(b: Party, b_seen: Mapping[str, Any], a_seen: Mapping[str, Any]) -> dict[str, str]:
    """What must never reach A: B's workspace, token, marker and every id in B's data that A lacks."""
    found = {
        b.workspace.id: "B's workspace id",
        b.workspace.slug: "B's workspace slug",
        b.workspace.token: "B's token",
        b.marker: "B's marker",
    }
    # Ids A sees too are not B's (e.g. the admin token that made both workspaces, in audit events).
    shared = uuids_in(list(a_seen.values()))
    for route, pages in b_seen.items():
        for value in sorted(uuids_in(pages) - shared):
            found.setdefault(value, f"B's id {value} (from {route})")
    for name, value in b.ids.items():
        found.setdefault(value, f"B's {name} {value}")
    return found


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [key for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


async def run_probe(
    http: httpx.AsyncClient,
    admin_token: str,
    *,
    routes: Iterable[Route],
    document: Mapping[str, Any],
    samples: Sequence[SampleFactory],
    target: str,
    discovery_findings: Sequence[Finding] = (),
    ground_truth: GroundTruth | None = None,
    progress: bool = False,
) -> ProbeReport:
    """Probe every route in `routes` (the discovered tenant routes) of the API behind `http`."""
    discovered = sorted(set(routes), key=_order)
    async with probe_workspaces(http, admin_token) as workspaces:
        try:
            a = Party("A", await workspaces.create("a"), "zq" + random_source.token_hex(6))
            b = Party("B", await workspaces.create("b"), "zq" + random_source.token_hex(6))
            await _make_samples(a, http, samples)
            await _make_samples(b, http, samples)
        except SampleError as exc:
            raise ProbeError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise ProbeError(f"the API did not answer: {exc!r}") from exc
        session = ProbeSession(http, document, a, b, findings=list(discovery_findings))
        await _probe(session, discovered, ground_truth, progress)
    session.notes += workspaces.cleanup_errors
    for route in discovered:
        if route not in session.probed | session.failed_control | session.not_served:
            why = "no sample covers it" if route not in a.uses else "its ids are not all made by a sample"
            session.report("unprobed-route", route, f"A sent it no request: {why}")
    for route in sorted(a.uses.keys() - set(discovered), key=_order):
        session.notes.append(f"{route}: covered by a sample but not served (stale sample?)")
    checked = Checked(
        target=target,
        workspaces={"a": a.workspace.id, "b": b.workspace.id},
        routes=[str(r) for r in discovered],
        probed=[str(r) for r in discovered if r in session.probed],
        not_served=[str(r) for r in discovered if r in session.not_served],
        requests=session.requests,
        comparisons=session.comparisons,
    )
    return ProbeReport(ok=not session.findings, checked=checked, findings=session.findings, notes=session.notes)


def _no_fresh_object(session: ProbeSession, route: Route, exc: SampleError) -> None:
    session.failed_control.add(route)
    session.report("control-failed", route, f"control request failed: cannot probe: no new object to use: {exc}")


async def _probe(
    session: ProbeSession, discovered: list[Route], ground_truth: GroundTruth | None, progress: bool
) -> None:
    a, b = session.a, session.b
    # Only routes every id of which a sample made: the rest stay unprobed and are reported.
    plan = [(r, a.uses[r]) for r in discovered if r in a.uses and set(r.parameters) <= a.ids.keys() & b.ids.keys()]
    # B's part comes first: B's own requests change B (new objects, its token's last_used_at).
    keys, cursors = {}, {}
    for route, _ in plan:
        if checks.takes_idempotency_key(route) and (stored := await checks.store_b_idempotent_requests(session, route)):
            keys[route] = stored
        if checks.lists_with_cursors(session, route) and (cursor := await checks.b_cursor(session, route)):
            cursors[route] = cursor
    a_seen = await snapshot(session, a)
    b_before = await snapshot(session, b)
    session.secrets = _b_secrets(b, b_before, a_seen)
    rows_before = await ground_truth(b.workspace.id) if ground_truth else None

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]probe[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=not (progress and console.is_terminal),
    ) as bar:
        task = bar.add_task("", total=2 * len(plan))
        for route, use in plan:
            bar.update(task, description=str(route))
            try:
                if await checks.control(session, route, use) is not None:
                    await checks.foreign_path(session, route, use)
                    await checks.foreign_references(session, route, use)
                    if route in cursors:
                        await checks.foreign_cursor(session, route, cursors[route])
                    if route in keys:
                        await checks.foreign_idempotency_key(session, route, use, *keys[route])
            except SampleError as exc:
                _no_fresh_object(session, route, exc)
            bar.advance(task)
        for route, use in sorted(plan, key=lambda item: _order(item[0])):
            bar.update(task, description=f"{route} (tenant inputs)")
            if route not in session.failed_control | session.not_served:
                try:
                    await checks.tenant_inputs(session, route, use)
                except SampleError as exc:
                    _no_fresh_object(session, route, exc)
            bar.advance(task)

    if ground_truth is not None:
        rows_after = await ground_truth(b.workspace.id)
        if rows_after != rows_before:
            changed = _changes(rows_before, rows_after) if isinstance(rows_before, dict) else ["rows"]
            session.report("changed-rows", "-", f"B's rows differ afterwards in: {', '.join(changed)}")
    b_after = await snapshot(session, b)
    for key in _changes(b_before, b_after):
        session.report("changed", key, f"B's own view differs afterwards: {str(b_after.get(key))[:300]}")
