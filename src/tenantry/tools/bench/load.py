"""Load generators: wrk with a Lua script when installed, else an async Python client.

Both take the same list of requests (method, path, token or tenant header, body), rotate through
it for a fixed time over a fixed number of keep-alive connections, and report the same numbers:
requests, throughput, latency percentiles, non-2xx answers and socket errors.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import httpx
import msgspec

LoadTool = Literal["wrk", "python"]
RESULT_MARK = "WRK_RESULT "


class RequestSpec(msgspec.Struct, frozen=True):
    """One request; `{n}` in the body becomes a value unique within the run (for SKUs)."""

    method: str
    path: str
    token: str | None = None
    tenant: str | None = None
    body: str | None = None


class LoadResult(msgspec.Struct, kw_only=True):
    tool: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    status_errors: int  # answers outside 2xx/3xx
    socket_errors: int  # connect, read, write errors and timeouts
    # The measured server's database connections opened and closed during this load (the runner
    # fills them in from pg_stat_activity; None where not counted).
    backends_opened: int | None = None
    backends_closed: int | None = None

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def pick_tool(preference: str) -> LoadTool:
    if preference == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preference == "wrk":
        raise RuntimeError("--load wrk: wrk is not installed (apt-get install wrk), or use --load python")
    return "python"


def run_load(
    tool: LoadTool, base_url: str, specs: Sequence[RequestSpec], *, connections: int, seconds: float, threads: int = 1
) -> LoadResult:
    if not specs:
        raise ValueError("no requests to send")
    if tool == "wrk":
        return run_wrk(base_url, specs, connections=connections, seconds=seconds, threads=threads)
    return asyncio.run(run_python(base_url, specs, connections=connections, seconds=seconds))


def _spec_line(spec: RequestSpec) -> str:
    fields = (spec.method, spec.path, spec.token or "-", spec.tenant or "-", spec.body or "-")
    if any("\t" in f or "\n" in f for f in fields):
        raise ValueError(f"a request field holds a tab or newline: {spec!r}")
    return "\t".join(fields)


def run_wrk(
    base_url: str, specs: Sequence[RequestSpec], *, connections: int, seconds: float, threads: int = 1
) -> LoadResult:
    script = resources.files("tenantry.tools.bench").joinpath("load.lua")
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        requests_file = Path(folder) / "requests.tsv"
        requests_file.write_text("".join(_spec_line(s) + "\n" for s in specs), encoding="utf-8")
        script_file = Path(folder) / "load.lua"
        script_file.write_text(script.read_text(encoding="utf-8"), encoding="utf-8")
        command = [
            "wrk", f"-t{max(1, min(threads, connections))}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script_file), base_url, "--", str(requests_file), secrets.token_hex(4),
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}")
    raw = json.loads(line[len(RESULT_MARK) :])
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        connections=connections,
        seconds=duration,
        requests=raw["requests"],
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        status_errors=raw["status_errors"],
        socket_errors=raw["socket_errors"],
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run_python(base_url: str, specs: Sequence[RequestSpec], *, connections: int, seconds: float) -> LoadResult:
    """The fallback: `connections` tasks, each with its own keep-alive connection, for `seconds`."""
    nonce = secrets.token_hex(4)
    latencies: list[float] = []
    status_errors = socket_errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(number: int) -> None:
        nonlocal status_errors, socket_errors
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:
            counter = number * 7919  # spread the starting points like wrk's threads
            while time.perf_counter() < deadline:
                counter += 1
                spec = specs[counter % len(specs)]
                headers = {}
                if spec.token:
                    headers["Authorization"] = f"Bearer {spec.token}"
                if spec.tenant:
                    headers["X-Tenant-Id"] = spec.tenant
                content = None
                if spec.body is not None:
                    headers["Content-Type"] = "application/json"
                    content = spec.body.replace("{n}", f"{nonce}-{number}-{counter}").encode()
                sent = time.perf_counter()
                try:
                    response = await client.request(spec.method, spec.path, headers=headers, content=content)
                except httpx.HTTPError:
                    socket_errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                if not 200 <= response.status_code < 400:
                    status_errors += 1

    await asyncio.gather(*(worker(n) for n in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    # Completed answers only, as wrk counts: a failed connection is an error, not a request served.
    done = len(latencies)
    return LoadResult(
        tool="python",
        connections=connections,
        seconds=elapsed,
        requests=done,
        rps=done / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0,
        max_ms=(latencies[-1] * 1000) if latencies else 0.0,
        status_errors=status_errors,
        socket_errors=socket_errors,
    )
