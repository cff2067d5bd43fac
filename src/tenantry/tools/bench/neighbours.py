"""Scenario n: noisy neighbours, run by `tenantry bench`.

Workspace 1 floods its heaviest list over every connection of the bench, as fast as the answers
come back (refusals included: a careless client does not wait for Retry-After), on an API with
the default request limits. Workspace 2 lists its products over a couple of connections, first
alone, then during the flood; the target is its p95 during the flood within 1.5 x its p95 alone.

Workspace 2 gets a roomy plan, so its own limits never refuse it (only the flood can move its
latency); workspace 1 has the defaults. Every other scenario's server runs with roomy defaults:
the limiter runs there too (its cost is in their numbers) but never refuses.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from tenantry.settings import Settings
from tenantry.tools.bench import database, scenarios
from tenantry.tools.bench.load import LoadResult
from tenantry.tools.bench.results import PairResult, judge_pair

if TYPE_CHECKING:
    from tenantry.tools.bench.runner import Bench
    from tenantry.tools.bench.servers import RunningServer

ROLE = "app_limited"
# The flood starts this long before the neighbour's window and ends this long after it.
LEAD_S = 1.0
ROOMY = {"requests": 1_000_000, "window_s": 1, "concurrency": 10_000}


def server_limits(role: str, redis_url: str | None) -> dict[str, str]:
    """The limits of a bench server: the defaults for scenario n's, never refusing for the others."""
    if role == ROLE:
        # Keys of this run only: nothing carried over from an earlier run, nothing shared with a
        # deployment that uses the same Redis.
        prefix = f"tenantry-bench-{secrets.token_hex(4)}:"
        return {"TENANTRY_REDIS_URL": redis_url, "TENANTRY_REDIS_KEY_PREFIX": prefix} if redis_url else {}
    return {
        f"TENANTRY_LIMIT_{scope}_{kind.upper()}": str(value)
        for scope in ("WORKSPACE", "TOKEN")
        for kind, value in ROOMY.items()
    }


async def _plans(settings: Settings, flooder: uuid.UUID, neighbour: uuid.UUID) -> None:
    """The flooder on the defaults, the measured workspace on a roomy plan (as the owner role)."""
    engine = database.admin_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM public.workspace_plans WHERE workspace_id = :w"), {"w": flooder})
            await connection.execute(
                text(
                    "INSERT INTO public.workspace_plans (workspace_id, workspace_requests, workspace_window_s, "
                    "workspace_concurrency, token_requests, token_window_s, token_concurrency) "
                    "VALUES (:w, :r, :s, :c, :r, :s, :c) ON CONFLICT (workspace_id) DO UPDATE SET "
                    "workspace_requests = :r, workspace_window_s = :s, workspace_concurrency = :c, "
                    "token_requests = :r, token_window_s = :s, token_concurrency = :c"
                ),
                {"w": neighbour, "r": ROOMY["requests"], "s": ROOMY["window_s"], "c": ROOMY["concurrency"]},
            )
    finally:
        await engine.dispose()


def _flooded(bench: Bench, server: RunningServer, flood: scenarios.Side, side: scenarios.Side) -> LoadResult:
    """The neighbour's load while the flood runs on every connection of the bench."""
    seconds = bench.options.duration
    flood_result: list[LoadResult] = []
    worker = threading.Thread(
        target=lambda: flood_result.append(bench._load(server, flood, seconds + 2 * LEAD_S)),
        name="tenantry-bench-flood",
    )
    worker.start()
    time.sleep(LEAD_S)
    try:
        measured = bench._load(server, side, seconds, connections=scenarios.NEIGHBOUR_CONNECTIONS)
    finally:
        worker.join()
    if flood_result:
        bench.floods.append(flood_result[0])
    return measured


def measure(
    bench: Bench,
    settings: Settings,
    few: list[database.BenchWorkspace],
    resolve: Callable[[str], RunningServer],
) -> PairResult:
    if len(few) < 2:
        raise RuntimeError("scenario n needs at least 2 workspaces (--workspaces-small)")
    pair, flood = scenarios.pair_n(few)
    for label in [label for label in bench.running if label != ROLE]:
        bench._stop(bench.running[label])  # the flood's server alone: pools must fit max_connections
    asyncio.run(_plans(settings, few[0].workspace_id, few[1].workspace_id))
    server = resolve(ROLE)
    bench._log(f"scenario n: {pair.title}")
    bench._warm(server, flood)
    bench._warm(server, pair.baseline)
    options = bench.options
    if options.warmup > 0:
        bench._load(server, pair.baseline, options.warmup, connections=scenarios.NEIGHBOUR_CONNECTIONS)
    idle: list[LoadResult] = []
    flooded: list[LoadResult] = []
    for number in range(1, options.rounds + 1):
        # Alone, during, during, alone, ...: neither side always runs first.
        runs = ("idle", "flood") if number % 2 else ("flood", "idle")
        for run in runs:
            if run == "idle":
                idle.append(bench._load(server, pair.baseline, options.duration, scenarios.NEIGHBOUR_CONNECTIONS))
            else:
                flooded.append(_flooded(bench, server, flood, pair.subject))
        floods = bench.floods[-1]
        bench._log(
            f"  round {number}: alone p95 {idle[-1].p95_ms:.1f} ms | during p95 {flooded[-1].p95_ms:.1f} ms | "
            f"flood {floods.rps:,.0f} req/s, {floods.status_errors / max(floods.requests, 1):.0%} refused"
        )
    result = judge_pair(pair, idle, flooded)
    rounds = bench.floods[-options.rounds :]
    requests = sum(r.requests for r in rounds)
    refused = sum(r.status_errors for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    bench.notes.append(
        f"n: the flood (workspace 1, {options.connections} connections, {'Redis' if options.redis_url else 'limits per process, no Redis'}) "
        f"sent {requests / seconds if seconds else 0:,.0f} req/s, {refused:,} of {requests:,} refused with 429 "
        f"({refused / max(requests, 1):.1%}); served {(requests - refused) / seconds if seconds else 0:,.0f} req/s."
    )
    bench._log(f"  n: {result.verdict}")
    return result
