"""The whole run: server, seeded databases, server processes, scenarios, memory, report."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from tenantry.settings import Settings
from tenantry.tools.bench import ALL_SCENARIOS, database, neighbours, scenarios, servers, warm
from tenantry.tools.bench import citus as citus_scenario
from tenantry.tools.bench.citus import CitusReport
from tenantry.tools.bench.load import LoadResult, LoadTool, pick_tool, run_load
from tenantry.tools.bench.results import (
    BenchReport,
    LayoutResult,
    Machine,
    PairResult,
    SingleResult,
    WorkerMemory,
    combine,
    judge_pair,
    judge_single,
)
from tenantry.tools.bench.scenarios import S_CONNECTIONS, S_WORKERS
from tenantry.tools.seed import PlainProgress, Progress, RichProgress

PG_SETTINGS = ("max_connections", "shared_buffers", "work_mem", "effective_cache_size", "synchronous_commit", "fsync")
GET_IDS_PER_WORKSPACE = 20


@dataclass
class BenchOptions:
    data_dir: Path
    database_url: str | None = None
    workers: int = 2
    connections: int = 50
    duration: float = 10.0
    rounds: int = 3
    warmup: float = 3.0
    workspaces_small: int = 100
    workspaces_large: int = 10_000
    products_total: int = 1_000_000
    scenarios: tuple[str, ...] = ALL_SCENARIOS
    server: servers.ServerKind = "uvicorn"
    load: str = "auto"
    load_threads: int = 1
    ports: tuple[int, int] | None = None  # the servers' ports (first, last); None: any free port
    s_workers: tuple[int, ...] = S_WORKERS  # scenario s: each worker count ...
    s_connections: tuple[int, ...] = S_CONNECTIONS  # ... at each number of connections
    auth_cache_ttl_s: float = 60.0  # TENANTRY_AUTH_CACHE_TTL_S of the API servers; 0 = cache off
    citus_url: str | None = None  # scenario z: the Citus coordinator's server (its `postgres` database)
    z_workers: int = 1  # scenario z: workers of each side's API server
    z_connections: int = 16  # scenario z: connections per side
    citus_json_path: Path | None = None
    citus_report_path: Path | None = None
    redis_url: str | None = None  # TENANTRY_REDIS_URL of the server of scenario n (else limits per process)
    json_path: Path | None = None
    report_path: Path | None = None
    plot_path: Path | None = None
    command: str = "tenantry bench"
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def products_per_workspace(self, workspaces: int) -> int:
        """Both databases hold `products_total` products: only the number of tenants differs."""
        return max(1, math.ceil(self.products_total / workspaces))


class Bench:
    def __init__(self, options: BenchOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        self.tool: LoadTool = pick_tool(options.load)
        self.running: dict[str, servers.RunningServer] = {}
        self.memory: list[WorkerMemory] = []
        self.server_settings: dict[str, Settings] = {}
        self.notes: list[str] = []
        self.warm_runs: list[warm.WarmResult] = []
        self.floods: list[LoadResult] = []  # scenario n's flood, one per round
        self.citus_report: CitusReport | None = None  # scenario z's, written on its own
        if self.tool == "python" and {"a", "b", "c"} & set(options.scenarios):
            self._note(
                "WARNING: the Python load generator was used (wrk "
                + ("not installed" if options.load == "auto" else "not chosen")
                + "). It is slower than the servers, so throughput pairs a-c are bounded by the client "
                "and their ratios understate differences; install wrk for numbers worth reading."
            )
        ttl = options.auth_cache_ttl_s
        if ttl > 0 and options.duration + options.warmup >= ttl / 2:
            self._note(
                f"WARNING: --duration {options.duration:g} s (+ warm-up {options.warmup:g} s) is not short next to "
                f"the token cache TTL of {ttl:g} s: entries may expire inside a measured window and add misses."
            )

    def _progress(self) -> Progress:
        if self.console.is_terminal:
            return _RowsOnly(RichProgress(), show_workspaces=True)
        return _RowsOnly(PlainProgress(lambda line: self.console.print(line, highlight=False)), show_workspaces=False)

    def _log(self, message: str) -> None:
        self.console.print(f"[bold]bench[/bold] {message}", highlight=False)

    def _note(self, message: str) -> None:
        """Said now on the console and again in the report."""
        self.notes.append(message)
        self._log(f"[yellow]{message}[/yellow]")

    def run(self) -> BenchReport:
        options, started = self.options, time.perf_counter()
        wanted = set(options.scenarios)
        main = wanted - {"z"}  # z alone seeds none of the other scenarios' databases
        load_at_start = _load_average()
        options.data_dir.mkdir(parents=True, exist_ok=True)
        server_url, handle = database.start_server(options.data_dir, options.database_url)
        layouts: list[LayoutResult] = []
        pairs: list[PairResult] = []
        singles: list[SingleResult] = []
        try:
            keys = database.bench_secrets(options.data_dir, options.environ)
            few_layout = database.Layout(
                "few", options.workspaces_small, options.products_per_workspace(options.workspaces_small)
            )
            many_layout = database.Layout(
                "many", options.workspaces_large, options.products_per_workspace(options.workspaces_large)
            )
            few_settings = database.layout_settings(server_url, few_layout, keys)
            if main:
                layouts.append(self._seed(few_layout, few_settings))
                few = self.workspaces
                many_settings: Settings | None = None
                many: list[database.BenchWorkspace] = []
                if "d" in wanted:
                    many_settings = database.layout_settings(server_url, many_layout, keys)
                    layouts.append(self._seed(many_layout, many_settings))
                    many = self.workspaces
                if "b" in wanted:
                    self._log("copying products to bench.products_norls (no RLS) for scenario b")
                    asyncio.run(database.ensure_norls_copy(few_settings))
                pairs, singles = self._measure(wanted, few_settings, few, many_settings, many)
                machine = self._machine(few_settings)
            if "z" in wanted:
                self.citus_report = citus_scenario.measure(self, server_url, keys, load_at_start, started)
                machine = self.citus_report.machine
            # On a shared machine the neighbours' load is part of the numbers: say how much there was.
            self.notes.append(
                f"Load average (1, 5, 15 min, as `uptime` prints it) at the start: {load_at_start}; "
                f"at the end: {_load_average()}"
            )
            if self.warm_runs:
                self.notes.append(self._warm_summary())
        finally:
            for server in list(self.running.values()):
                self._stop(server)
            if handle is not None:
                handle.cleanup()  # type: ignore[attr-defined]
        return BenchReport(
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            command=options.command,
            machine=machine,
            connections=options.connections,
            duration_s=options.duration,
            rounds=options.rounds,
            warmup_s=options.warmup,
            layouts=layouts,
            pairs=pairs,
            singles=singles,
            memory=self.memory if "f" in wanted else [],
            total_seconds=time.perf_counter() - started,
            notes=self.notes,
        )

    def _seed(self, layout: database.Layout, settings: Settings) -> LayoutResult:
        self._log(
            f"database {layout.database}: {layout.workspaces:,} workspaces x {layout.products:,} products "
            "(existing workspaces are reused)"
        )
        started = time.perf_counter()
        progress = self._progress()
        self.workspaces, created = asyncio.run(
            database.prepare_layout(settings, layout, self.options.data_dir, progress)
        )
        seconds = time.perf_counter() - started
        self._log(f"database {layout.database} ready in {seconds:.1f} s")
        return LayoutResult(
            label=layout.label,
            database=layout.database,
            workspaces=layout.workspaces,
            products_per_workspace=layout.products,
            products=layout.workspaces * layout.products,
            seed_seconds=seconds,
            created_workspaces=created,
        )

    def _server(self, role: str, settings: Settings, workers: int | None = None) -> servers.RunningServer:
        if role not in self.running:
            target: servers.Target = "raw" if role == "raw" else "litestar" if role.startswith("litestar") else "app"
            workers = workers or self.options.workers
            self._log(f"starting {role} ({self.options.server}, {workers} workers)")
            self.running[role] = servers.start(
                role,
                self.options.server,
                target,
                settings,
                workers,
                self.options.data_dir / "logs",
                auth_cache_ttl_s=self.options.auth_cache_ttl_s,
                extra_env=neighbours.server_limits(role, self.options.redis_url),
                ports=self.options.ports,
            )
            self.server_settings[role] = settings
        return self.running[role]

    def _stop(self, server: servers.RunningServer) -> None:
        server.stop()
        self.running.pop(server.label, None)
        self.memory.append(
            WorkerMemory(
                server=server.label,
                target=server.target,
                workers=server.workers,
                peak_rss_mb=[round(v / 2**20, 1) for v in sorted(server.peak_rss_bytes.values())],
            )
        )

    def _warm(self, server: servers.RunningServer, side: scenarios.Side) -> None:
        """Empty the server's token caches, then fill them with every token the side sends, in every worker.

        Emptied first so that every entry is put just before the window and lives `ttl` from then:
        with the window shorter than that, the side is measured on hits only, whatever ran before.
        """
        tokens = [spec.token for spec in side.specs if spec.token]
        if server.target != "app" or not tokens or self.options.auth_cache_ttl_s <= 0:
            return
        asyncio.run(database.flush_principal_caches(self.server_settings[server.label]))
        time.sleep(0.5)  # the NOTIFY reaches the workers' listeners asynchronously
        result = asyncio.run(warm.warm_tokens(server, tokens))
        self.warm_runs.append(result)
        how = "every worker" if result.exact else f"{result.workers_reached}/{result.workers} workers identified"
        self._log(
            f"  warmed {server.label}'s token cache: {result.tokens:,} tokens, {result.requests:,} requests "
            f"({how}) in {result.seconds:.1f} s"
        )
        if result.errors:
            raise RuntimeError(f"warming {server.label}: {result.errors} tokens were refused; see {server.log_path}")
        if result.seconds + self.options.duration >= self.options.auth_cache_ttl_s:
            self._note(
                f"WARNING: warming {server.label} took {result.seconds:.1f} s; with {self.options.duration:g} s of "
                f"load the first entries expire (TTL {self.options.auth_cache_ttl_s:g} s) inside the window."
            )

    def _warm_summary(self) -> str:
        runs = self.warm_runs
        inexact = sum(1 for r in runs if not r.exact)
        reach = (
            "each worker identified by its socket and sent every token"
            if not inexact
            else f"in {inexact} of them not every worker could be identified: every token went over "
            f"workers x 3 connections instead"
        )
        return (
            f"Token cache emptied and refilled before each measured API side: {len(runs)} fills, "
            f"longest {max(r.seconds for r in runs):.1f} s, {sum(r.requests for r in runs):,} requests; {reach}."
        )

    def _measured(
        self, server: servers.RunningServer, side: scenarios.Side, seconds: float, connections: int | None = None
    ) -> LoadResult:
        self._warm(server, side)
        return self._load(server, side, seconds, connections)

    def _load(
        self, server: servers.RunningServer, side: scenarios.Side, seconds: float, connections: int | None = None
    ) -> LoadResult:
        # Connection churn: every backend of the measured servers that exists after the load but
        # not before it was opened during the load (pg_stat_activity's pid and backend_start).
        settings = self.server_settings[server.label]
        before = asyncio.run(database.server_backends(settings))
        result = run_load(
            self.tool,
            server.base_url,
            side.specs,
            connections=connections or self.options.connections,
            seconds=seconds,
            threads=self.options.load_threads,
        )
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.label} exited with {server.process.returncode} during the load: see {server.log_path}"
            )
        server.sample_memory()
        after = asyncio.run(database.server_backends(settings))
        result.backends_opened = len(after - before)
        result.backends_closed = len(before - after)
        return result

    def _pair(
        self,
        pair: scenarios.Pair,
        resolve: Callable[[str], servers.RunningServer],
        connections: int | None = None,
    ) -> PairResult:
        options = self.options
        self._log(f"scenario {pair.key}: {pair.title}")
        base_server, subject_server = resolve(pair.baseline.server), resolve(pair.subject.server)
        if options.warmup > 0:
            self._measured(base_server, pair.baseline, options.warmup, connections)
            self._measured(subject_server, pair.subject, options.warmup, connections)
        baseline, subject = [], []
        for number in range(1, options.rounds + 1):
            # A B, B A, A B ...: neither side always runs first (after the other's load, on a warmer machine).
            if number % 2:
                baseline.append(self._measured(base_server, pair.baseline, options.duration, connections))
                subject.append(self._measured(subject_server, pair.subject, options.duration, connections))
                order = "baseline first"
            else:
                subject.append(self._measured(subject_server, pair.subject, options.duration, connections))
                baseline.append(self._measured(base_server, pair.baseline, options.duration, connections))
                order = "subject first"
            self._log(
                f"  round {number} ({order}): {pair.baseline.label} {_brief(baseline[-1])} | "
                f"{pair.subject.label} {_brief(subject[-1])}"
            )
        result = judge_pair(pair, baseline, subject)
        self._log(f"  {pair.key}: {result.verdict}")
        return result

    def _measure(
        self,
        wanted: set[str],
        few_settings: Settings,
        few: list[database.BenchWorkspace],
        many_settings: Settings | None,
        many: list[database.BenchWorkspace],
    ) -> tuple[list[PairResult], list[SingleResult]]:
        def resolve(role: str) -> servers.RunningServer:
            if role == "app_many":
                assert many_settings is not None
                return self._server(role, many_settings)
            return self._server(role, few_settings)

        pairs: list[PairResult] = []
        singles: list[SingleResult] = []
        if "a" in wanted:
            pairs.append(self._pair(scenarios.pair_a(few), resolve))
        if "b" in wanted:
            pairs.append(self._pair(scenarios.pair_b(few), resolve))
        if "raw" in self.running:
            # At most two servers at a time: their pools must fit PostgreSQL's max_connections.
            self._stop(self.running["raw"])
        if "c" in wanted:
            pairs.append(self._pair(scenarios.pair_c(few), resolve))
        # d before e: e creates products in the small database, after which its products would no
        # longer be the same as the large one's.
        if "d" in wanted:
            pairs.append(self._pair(scenarios.pair_d(few, many), resolve))
        if "e" in wanted:
            ids = asyncio.run(
                database.sample_product_ids(
                    few_settings, [w.workspace_id for w in few[: scenarios.E_WORKSPACES]], GET_IDS_PER_WORKSPACE
                )
            )
            app = resolve("app")
            for single in scenarios.singles_e(few, ids):
                self._log(f"scenario {single.key}: {single.title}")
                if self.options.warmup > 0:
                    self._measured(app, single.side, self.options.warmup)
                rounds = [self._measured(app, single.side, self.options.duration) for _ in range(self.options.rounds)]
                judged = judge_single(single.key, single.title, combine(single.side.label, "app", rounds))
                self._log(f"  {single.key}: {_brief(rounds[-1])}: {judged.verdict}")
                singles.append(judged)
        if "s" in wanted:
            pairs.extend(self._same_framework(few_settings, few))
        if "n" in wanted:
            pairs.append(neighbours.measure(self, few_settings, few, resolve))
        if "f" in wanted and not self.running:
            resolve("app")  # f alone: at least the API's idle footprint
        return pairs, singles

    def _same_framework(self, settings: Settings, few: list[database.BenchWorkspace]) -> list[PairResult]:
        """Scenario s: list, get and create against Litestar on raw asyncpg, per workers x connections.

        Each worker count gets servers of its own (started here, stopped after): the API and the
        baseline only, so their pools fit the server's max_connections.
        """
        for server in list(self.running.values()):
            self._stop(server)
        ids = asyncio.run(
            database.sample_product_ids(
                settings, [w.workspace_id for w in few[: scenarios.E_WORKSPACES]], GET_IDS_PER_WORKSPACE
            )
        )
        results: list[PairResult] = []
        for workers in self.options.s_workers:
            labels = {"app_s": f"app_s_{workers}w", "litestar_s": f"litestar_s_{workers}w"}

            def resolve(role: str, labels: dict[str, str] = labels, workers: int = workers) -> servers.RunningServer:
                return self._server(labels[role], settings, workers)

            for connections in self.options.s_connections:
                for pair in scenarios.pairs_s(few, ids, workers=workers, connections=connections):
                    results.append(self._pair(pair, resolve, connections))
            for label in labels.values():
                if label in self.running:
                    self._stop(self.running[label])
        return results

    def _machine(self, settings: Settings) -> Machine:
        return Machine(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            ram_gb=round(_ram_bytes() / 2**30, 1),
            os=platform.platform(),
            python=platform.python_version(),
            postgres=asyncio.run(database.server_version(settings)),
            postgres_settings=asyncio.run(database.server_settings(settings, PG_SETTINGS)),
            server=f"{self.options.server} {_version(self.options.server)}",
            workers=self.options.workers,
            load_tool=_tool_version(self.tool),
            auth_cache_ttl_s=self.options.auth_cache_ttl_s,
        )


class _RowsOnly:
    """The seeder's progress without a line per workspace (10,000 of them), reused or not."""

    def __init__(self, inner: Progress, *, show_workspaces: bool) -> None:
        self.inner, self.show_workspaces = inner, show_workspaces

    def start(self, total_rows: int) -> None:
        self.inner.start(total_rows)

    def workspace(self, slug: str, skipped: bool) -> None:
        if self.show_workspaces and not skipped:
            self.inner.workspace(slug, skipped)

    def advance(self, rows: int) -> None:
        self.inner.advance(rows)

    def stop(self) -> None:
        self.inner.stop()


def _brief(result: LoadResult) -> str:
    errors = f", {result.errors} errors" if result.errors else ""
    return f"{result.rps:,.0f} req/s p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms{errors}"


def _load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _tool_version(tool: LoadTool) -> str:
    if tool == "python":
        return f"python client (httpx {_version('httpx')})"
    wrk = shutil.which("wrk") or "wrk"
    completed = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    first = (completed.stdout or completed.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"
