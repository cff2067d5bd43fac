"""The `tenantry bench` command."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenantry.tools.bench import ALL_SCENARIOS, OPTIONAL_SCENARIOS

if TYPE_CHECKING:
    from tenantry.tools.bench.runner import BenchOptions

# --quick: the whole pipeline in about a minute, for trying the harness, not for numbers.
QUICK = {
    "duration": 2.0,
    "rounds": 1,
    "warmup": 1.0,
    "workspaces_small": 10,
    "workspaces_large": 200,
    "products_total": 20_000,
}


def _scenarios(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [s for s in chosen if s not in ALL_SCENARIOS + OPTIONAL_SCENARIOS]
    if unknown or not chosen:
        known = ",".join(ALL_SCENARIOS + OPTIONAL_SCENARIOS)
        raise argparse.ArgumentTypeError(f"scenarios are a comma-separated subset of {known}")
    return chosen


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(dict.fromkeys(int(part) for part in value.split(",") if part.strip()))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers, e.g. 16,64")
    return counts


def _ports(value: str) -> tuple[int, int]:
    first, _, last = value.partition("-")
    try:
        ports = (int(first), int(last or first))
    except ValueError:
        ports = (0, -1)
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise argparse.ArgumentTypeError("a port range FIRST-LAST, e.g. 6700-6799")
    return ports


def options_from_args(args: argparse.Namespace, argv: list[str]) -> BenchOptions:
    from tenantry.tools.bench.runner import BenchOptions

    values: dict[str, Any] = {
        "duration": args.duration,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "workspaces_small": args.workspaces_small,
        "workspaces_large": args.workspaces_large,
        "products_total": args.products_total,
    }
    if args.quick:
        # Quick sizes unless given explicitly on the command line.
        for name, quick in QUICK.items():
            if f"--{name.replace('_', '-')}" not in " ".join(argv):
                values[name] = quick
    docs = Path(args.docs_dir)
    return BenchOptions(
        data_dir=Path(args.data_dir).resolve(),
        database_url=os.environ.get("DATABASE_URL") or None,
        workers=args.workers,
        connections=args.connections,
        scenarios=args.scenarios,
        server=args.server,
        load=args.load,
        load_threads=args.load_threads,
        ports=args.ports,
        s_workers=args.s_workers,
        s_connections=args.s_connections,
        auth_cache_ttl_s=args.auth_cache_ttl,
        redis_url=args.redis_url or None,
        citus_url=args.citus_url or None,
        z_workers=args.z_workers,
        z_connections=args.z_connections,
        citus_json_path=None if args.no_report else docs / "performance" / "citus.json",
        citus_report_path=None if args.no_report else docs / "performance.md",
        json_path=None if args.no_report else docs / "performance" / "results.json",
        report_path=None if args.no_report else docs / "performance.md",
        plot_path=None if args.no_report else docs / "performance" / "throughput.png",
        command=shlex.join(["tenantry", *argv]),
        **values,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    # Imported here: the harness needs the `bench` extra, the rest of the CLI does not.
    from rich.console import Console

    from tenantry.tools.bench.report import render_markdown, update_markdown, write_json, write_plot
    from tenantry.tools.bench.runner import Bench

    argv = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench"]
    options = options_from_args(args, argv)
    if options.workers < 1 or options.connections < 1 or options.rounds < 1 or options.duration <= 0:
        print("tenantry: --workers, --connections and --rounds must be at least 1, --duration above 0", file=sys.stderr)
        return 2
    if min(options.workspaces_small, options.workspaces_large) < 1 or options.products_total < 1:
        print("tenantry: workspace counts and --products-total must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= options.auth_cache_ttl_s <= 3600:  # the range Settings accepts; also false for NaN
        print("tenantry: --auth-cache-ttl is between 0 (cache off) and 3600 seconds", file=sys.stderr)
        return 2
    if "z" in options.scenarios and not options.citus_url:
        print(
            "tenantry: scenario z needs --citus-url, the Citus coordinator's server (docs/performance.md)",
            file=sys.stderr,
        )
        return 2
    if min(options.z_workers, options.z_connections) < 1:
        print("tenantry: --z-workers and --z-connections must be at least 1", file=sys.stderr)
        return 2
    from tenantry.tools.bench import citus

    console = Console(stderr=True)
    bench = Bench(options, console)
    try:
        report = bench.run()
    except citus.NotACitusCluster as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    if bench.citus_report and options.citus_json_path and options.citus_report_path:
        citus.write(bench.citus_report, options.citus_json_path, options.citus_report_path)
        console.print(f"scenario z: {options.citus_json_path}, {options.citus_report_path}")
    for endpoint in bench.citus_report.endpoints if bench.citus_report else []:
        console.print(
            f"z.{endpoint.endpoint}: Citus / single node: req/s {endpoint.rps_ratio:.3f}, "
            f"p95 {endpoint.p95_ratio:.3f}, p99 {endpoint.p99_ratio:.3f}",
            highlight=False,
        )
    # z alone leaves the main results (their own run) as they are.
    main = set(options.scenarios) - set(OPTIONAL_SCENARIOS)
    if main and options.json_path and options.report_path and options.plot_path:
        write_json(report, options.json_path)
        write_plot(report, options.plot_path)
        update_markdown(options.report_path, render_markdown(report, options.plot_path.name))
        console.print(f"results: {options.json_path}, {options.report_path}, {options.plot_path}")
    for pair in report.pairs:
        console.print(f"{pair.key}. {pair.goal}: {pair.verdict}", highlight=False)
    for single in report.singles:
        console.print(f"{single.key}. {single.title}: {single.verdict}", highlight=False)
    for note in report.notes:
        # Again at the end, where it is read: a warning printed before ten minutes of logs is missed.
        console.print(f"[yellow]{note}[/yellow]" if note.startswith("WARNING") else note, highlight=False)
    return 0


def add_bench_command(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the API against raw asyncpg, RLS, token cost, tenant count (writes docs/performance.md)",
    )
    bench.add_argument("--data-dir", default=".tenantry-bench", help="embedded PostgreSQL, secrets and tokens (reused)")
    bench.add_argument("--docs-dir", default="docs", help="where performance.md and performance/ are written")
    bench.add_argument("--no-report", action="store_true", help="print the results only, write no files")
    bench.add_argument("--workers", type=int, default=2, help="worker processes per server (default 2)")
    bench.add_argument("--connections", type=int, default=50, help="concurrent connections (default 50)")
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per side per round (default 10)")
    bench.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pair (default 3)")
    bench.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per side first (default 3)")
    bench.add_argument("--workspaces-small", type=int, default=100, help="workspaces of the small database (100)")
    bench.add_argument("--workspaces-large", type=int, default=10_000, help="workspaces of the large one (10,000)")
    bench.add_argument(
        "--products-total", type=int, default=1_000_000, help="products of the large database (1,000,000)"
    )
    bench.add_argument(
        "--scenarios",
        type=_scenarios,
        default=ALL_SCENARIOS,
        help="e.g. a,b,c (default all: a-f, n and s; z, Citus beside a single node, only when named)",
    )
    bench.add_argument(
        "--ports", type=_ports, default=None, help="the servers' ports, FIRST-LAST (default: any free port)"
    )
    bench.add_argument(
        "--s-workers", type=_counts, default=(1, 2), help="scenario s: workers per server, each in turn (1,2)"
    )
    bench.add_argument(
        "--s-connections", type=_counts, default=(16, 64), help="scenario s: connections, each in turn (16,64)"
    )
    bench.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn", help="ASGI server (uvicorn)")
    bench.add_argument("--load", choices=("auto", "wrk", "python"), default="auto", help="load generator (auto: wrk)")
    bench.add_argument("--load-threads", type=int, default=1, help="wrk threads (default 1: leave cores to the API)")
    bench.add_argument(
        "--auth-cache-ttl",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the API's token cache TTL, TENANTRY_AUTH_CACHE_TTL_S (default 60; 0 = off: the uncached path)",
    )
    bench.add_argument(
        "--redis-url",
        default=os.environ.get("TENANTRY_REDIS_URL", ""),
        help="TENANTRY_REDIS_URL of scenario n's API (default: $TENANTRY_REDIS_URL; unset: limits per process)",
    )
    bench.add_argument(
        "--citus-url",
        default="",
        help="scenario z: the Citus coordinator's server (its postgres database has the workers registered); "
        "the single node it is compared with is DATABASE_URL's server, or the embedded one",
    )
    bench.add_argument("--z-workers", type=int, default=1, help="scenario z: workers of each API server (1)")
    bench.add_argument("--z-connections", type=int, default=16, help="scenario z: connections per side (16)")
    bench.add_argument("--quick", action="store_true", help="tiny sizes and short runs: tries the harness in ~1 min")
    bench.set_defaults(func=_cmd_bench)
