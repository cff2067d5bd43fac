"""Scenario z: list, get and create on a Citus cluster beside a single node with the same data.

The single node is the bench's own server (DATABASE_URL, or the embedded PostgreSQL); the cluster
is the coordinator named by `--citus-url`, whose `postgres` database has its workers registered
(docs/scale-out.md). Each gets a database of the same layout (`--workspaces-small` workspaces x
`--products-total / --workspaces-small` products, seeded by the same Seeder); on the coordinator
`ensure_database` makes it on the workers too and `db upgrade` distributes it. Then one API server
of `--z-workers` workers per side runs the same three requests, interleaved as the pairs are
(A B, B A, ...), and the report gives req/s and p50/p95/p99 of both with their ratios. There is no
target: issue 10 asks for the numbers (docs/performance.md, "Citus beside a single node").
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tenantry.settings import Settings, to_asyncpg_url
from tenantry.tools.bench import database
from tenantry.tools.bench.database import BenchWorkspace, Layout, Secrets, admin_engine
from tenantry.tools.bench.load import LoadResult, RequestSpec
from tenantry.tools.bench.report import generated_by
from tenantry.tools.bench.results import LayoutResult, Machine, SideResult, combine
from tenantry.tools.bench.scenarios import CREATE_BODY, E_WORKSPACES, LIST_PATH, Side, interleave, list_specs

if TYPE_CHECKING:
    from tenantry.tools.bench.runner import Bench
    from tenantry.tools.bench.servers import RunningServer

ENDPOINTS = ("list", "get", "create")
SINGLE_PREFIX = "tenantry_bench_z_single"
CITUS_PREFIX = "tenantry_bench_z_citus"
LABELS = {"list": LIST_PATH, "get": "GET /v1/products/{id}", "create": "POST /v1/products"}


class NotACitusCluster(RuntimeError):
    """--citus-url does not name a coordinator with workers."""


@dataclass(frozen=True)
class Comparison:
    endpoint: str
    single: Side
    citus: Side


def sides(
    endpoint: str,
    workspaces: Sequence[BenchWorkspace],
    product_ids: dict[uuid.UUID, list[uuid.UUID]],
    server: Literal["z_single", "z_citus"],
) -> Side:
    """What one side sends for one endpoint: as scenario s sends it to the API."""
    chosen = [w for w in workspaces if product_ids.get(w.workspace_id)][:E_WORKSPACES]
    if endpoint == "list":
        specs = list_specs(workspaces)
    elif endpoint == "get":
        specs = interleave(
            [
                [RequestSpec("GET", f"/v1/products/{p}", token=w.token) for p in product_ids[w.workspace_id]]
                for w in chosen
            ]
        )
    else:
        specs = tuple(RequestSpec("POST", "/v1/products", token=w.token, body=CREATE_BODY) for w in chosen)
    where = "single node" if server == "z_single" else "Citus"
    return Side(f"{LABELS[endpoint]} ({where})", server, specs)


def comparisons(
    single: Sequence[BenchWorkspace],
    single_ids: dict[uuid.UUID, list[uuid.UUID]],
    citus: Sequence[BenchWorkspace],
    citus_ids: dict[uuid.UUID, list[uuid.UUID]],
) -> list[Comparison]:
    return [
        Comparison(name, sides(name, single, single_ids, "z_single"), sides(name, citus, citus_ids, "z_citus"))
        for name in ENDPOINTS
    ]


async def cluster_nodes(server_url: str) -> list[str]:
    """The nodes registered in the coordinator's database of `server_url`, as `role host:port`;
    raises NotACitusCluster without the extension or without a worker."""
    engine = create_async_engine(to_asyncpg_url(server_url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            if not (
                await connection.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"))
            ).scalar():
                raise NotACitusCluster("--citus-url: the citus extension is not installed in that database")
            rows = (
                await connection.execute(
                    text(
                        "SELECT CASE WHEN groupid = 0 THEN 'coordinator' ELSE 'worker' END, nodename, nodeport "
                        "FROM pg_dist_node WHERE noderole = 'primary' AND isactive ORDER BY groupid, nodeid"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    if not any(role == "worker" for role, _, _ in rows):
        raise NotACitusCluster("--citus-url: no worker is registered on that coordinator (docs/scale-out.md)")
    return [f"{role} {host}:{port}" for role, host, port in rows]


async def distributed_tables(settings: Settings) -> int:
    """How many tables `db upgrade` distributed by tenant_id: the bench refuses to compare a cluster
    database that was not distributed (it would measure a single node twice)."""
    engine = admin_engine(settings)
    try:
        async with engine.connect() as connection:
            return int(
                (
                    await connection.execute(
                        text(
                            "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h' "
                            "AND column_to_column_name(logicalrelid, partkey) = 'tenant_id'"
                        )
                    )
                ).scalar_one()
            )
    finally:
        await engine.dispose()


class EndpointResult(msgspec.Struct, kw_only=True):
    endpoint: str
    single: SideResult
    citus: SideResult
    rps_ratio: float  # Citus / single node: below 1 is slower on Citus
    p95_ratio: float  # Citus / single node: above 1 is slower on Citus
    p99_ratio: float
    round_rps_ratios: list[float]


class CitusReport(msgspec.Struct, kw_only=True):
    """docs/performance/citus.json: one run of scenario z."""

    generated_at: str
    command: str
    machine: Machine
    single_server: str  # where the single node runs (URL without password)
    single_settings: dict[str, str]
    nodes: list[str]
    citus_settings: dict[str, str]
    distributed_tables: int
    layouts: list[LayoutResult]  # the single node's database, then the cluster's
    workers: int
    connections: int
    duration_s: float
    rounds: int
    warmup_s: float
    endpoints: list[EndpointResult]
    total_seconds: float
    notes: list[str] = msgspec.field(default_factory=list)


def ratio(subject: float, baseline: float) -> float:
    return subject / baseline if baseline else 0.0


def endpoint_result(endpoint: str, single: SideResult, citus: SideResult) -> EndpointResult:
    return EndpointResult(
        endpoint=endpoint,
        single=single,
        citus=citus,
        rps_ratio=ratio(citus.rps, single.rps),
        p95_ratio=ratio(citus.p95_ms, single.p95_ms),
        p99_ratio=ratio(citus.p99_ms, single.p99_ms),
        round_rps_ratios=[ratio(c.rps, s.rps) for s, c in zip(single.rounds, citus.rounds, strict=True)],
    )


# The settings both servers are compared on (the cluster's are the coordinator's).
SETTINGS = ("max_connections", "shared_buffers", "fsync", "synchronous_commit", "full_page_writes", "work_mem")
GET_IDS_PER_WORKSPACE = 20


def _without_password(url: str) -> str:
    return make_url(url).set(password=None).render_as_string(hide_password=True)


def measure(bench: Bench, single_url: str, keys: Secrets, load_at_start: str, started: float) -> CitusReport:
    """Seed both, then list, get and create against one API server per side, interleaved."""
    options = bench.options
    if not options.citus_url:
        raise NotACitusCluster("scenario z needs --citus-url, the Citus coordinator's server")
    products = options.products_per_workspace(options.workspaces_small)
    single_layout = Layout("z single node", options.workspaces_small, products, prefix=SINGLE_PREFIX)
    citus_layout = Layout("z Citus", options.workspaces_small, products, prefix=CITUS_PREFIX)
    single_settings = database.layout_settings(single_url, single_layout, keys)
    citus_settings = database.layout_settings(options.citus_url, citus_layout, keys)
    # Checked on the server's own database first: a database made on a coordinator without workers
    # would not be distributed, and the run would compare a single node with itself.
    nodes = asyncio.run(cluster_nodes(options.citus_url))
    for server in list(bench.running.values()):
        bench._stop(server)  # two servers of this scenario only: pools must fit max_connections
    layouts = [bench._seed(single_layout, single_settings)]
    single = bench.workspaces
    layouts.append(bench._seed(citus_layout, citus_settings))
    citus = bench.workspaces
    distributed = asyncio.run(distributed_tables(citus_settings))
    if distributed == 0:
        raise NotACitusCluster(f"{citus_layout.database} on --citus-url was not distributed by `db upgrade`")
    bench._log(
        f"scenario z: {citus_layout.database} distributed ({distributed} tables by tenant_id) on {', '.join(nodes)}"
    )
    ids = [
        asyncio.run(
            database.sample_product_ids(settings, [w.workspace_id for w in found[:E_WORKSPACES]], GET_IDS_PER_WORKSPACE)
        )
        for settings, found in ((single_settings, single), (citus_settings, citus))
    ]
    servers = {
        "z_single": bench._server("z_single", single_settings, options.z_workers),
        "z_citus": bench._server("z_citus", citus_settings, options.z_workers),
    }
    results = []
    for comparison in comparisons(single, ids[0], citus, ids[1]):
        results.append(_compare(bench, comparison, servers))
    for server in servers.values():
        bench._stop(server)
    machine = bench._machine(single_settings)
    return CitusReport(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        command=options.command,
        machine=machine,
        single_server=_without_password(single_url),
        single_settings=asyncio.run(database.server_settings(single_settings, SETTINGS)),
        nodes=nodes,
        citus_settings=asyncio.run(database.server_settings(citus_settings, SETTINGS)),
        distributed_tables=distributed,
        layouts=layouts,
        workers=options.z_workers,
        connections=options.z_connections,
        duration_s=options.duration,
        rounds=options.rounds,
        warmup_s=options.warmup,
        endpoints=results,
        total_seconds=time.perf_counter() - started,
        notes=[
            f"Load average (1, 5, 15 min) at the start: {load_at_start}; at the end: "
            + ", ".join(f"{value:.2f}" for value in os.getloadavg())
        ],
    )


def _compare(bench: Bench, comparison: Comparison, servers: dict[str, RunningServer]) -> EndpointResult:
    options = bench.options
    connections = options.z_connections
    single_server, citus_server = servers["z_single"], servers["z_citus"]
    bench._log(
        f"scenario z.{comparison.endpoint}: single node vs Citus, {options.z_workers} worker, {connections} connections"
    )
    if options.warmup > 0:
        bench._measured(single_server, comparison.single, options.warmup, connections)
        bench._measured(citus_server, comparison.citus, options.warmup, connections)
    single: list[LoadResult] = []
    citus: list[LoadResult] = []
    for number in range(1, options.rounds + 1):
        # A B, B A, ...: neither side always runs first.
        order = ((single, single_server, comparison.single), (citus, citus_server, comparison.citus))
        for runs, server, side in order if number % 2 else order[::-1]:
            runs.append(bench._measured(server, side, options.duration, connections))
        bench._log(
            f"  round {number}: single {single[-1].rps:,.0f} req/s p95 {single[-1].p95_ms:.1f} ms p99 "
            f"{single[-1].p99_ms:.1f} ms | Citus {citus[-1].rps:,.0f} req/s p95 {citus[-1].p95_ms:.1f} ms p99 "
            f"{citus[-1].p99_ms:.1f} ms"
        )
    result = endpoint_result(
        comparison.endpoint,
        combine(comparison.single.label, "z_single", single),
        combine(comparison.citus.label, "z_citus", citus),
    )
    bench._log(
        f"  z.{comparison.endpoint}: Citus / single node: req/s {result.rps_ratio:.3f}, "
        f"p95 {result.p95_ratio:.3f}, p99 {result.p99_ratio:.3f}"
    )
    return result


CITUS_START = "<!-- bench:citus:start (generated by `tenantry bench --scenarios z`; edits inside are overwritten) -->"
CITUS_END = "<!-- bench:citus:end -->"


def _settings(values: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(values.items()))


def render_markdown(report: CitusReport) -> str:
    """The generated part of docs/performance.md's section on scenario z."""
    m = report.machine
    single, cluster = report.layouts[0], report.layouts[-1]
    lines = [
        *generated_by(CITUS_START, report.generated_at, report.total_seconds, report.command),
        f"- Machine: {m.cpu}, {m.cores} cores, {m.ram_gb} GB RAM; Python {m.python}; server {m.server}; "
        f"load: {m.load_tool}",
        f"- Single node: PostgreSQL {m.postgres} at {report.single_server} ({_settings(report.single_settings)})",
        f"- Citus: {', '.join(report.nodes)}; coordinator {_settings(report.citus_settings)}; "
        f"{report.distributed_tables} tables distributed by tenant_id",
        f"- Data, the same layout on both: {single.workspaces:,} workspaces x {single.products_per_workspace:,} "
        f"products ({single.products:,}; {single.database} and {cluster.database})",
        f"- One API server per side, {report.workers} worker{'s' if report.workers != 1 else ''}, "
        f"{report.connections} connections, {report.rounds} interleaved rounds of {report.duration_s:g} s per side "
        f"after {report.warmup_s:g} s of warm-up; token cache warm (TTL {m.auth_cache_ttl_s:g} s)",
        *(f"- {note}" for note in report.notes),
        "",
        "| endpoint | single node req/s | Citus req/s | req/s Citus / single | single p50 / p95 / p99 ms "
        "| Citus p50 / p95 / p99 ms | p95 Citus / single | p99 Citus / single | errors (single, Citus) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in report.endpoints:
        rounds = ", ".join(f"{r:.2f}" for r in e.round_rps_ratios)
        lines.append(
            f"| {e.endpoint} | {e.single.rps:,.0f} | {e.citus.rps:,.0f} | {e.rps_ratio:.2f} (rounds: {rounds}) | "
            f"{e.single.p50_ms:.1f} / {e.single.p95_ms:.1f} / {e.single.p99_ms:.1f} | "
            f"{e.citus.p50_ms:.1f} / {e.citus.p95_ms:.1f} / {e.citus.p99_ms:.1f} | "
            f"{e.p95_ratio:.2f} | {e.p99_ratio:.2f} | {e.single.errors}, {e.citus.errors} |"
        )
    lines += ["", CITUS_END]
    return "\n".join(lines)


def write(report: CitusReport, json_path: Path, markdown_path: Path) -> None:
    """docs/performance/citus.json, and the section between the markers of docs/performance.md."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    text = markdown_path.read_text(encoding="utf-8") if markdown_path.exists() else "# Performance\n"
    section = render_markdown(report)
    start, end = text.find(CITUS_START), text.find(CITUS_END)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(CITUS_END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Citus beside a single node (scenario z)\n\n" + section + "\n"
    markdown_path.write_text(text, encoding="utf-8")
