"""Production server processes for the API and the raw baseline, and their workers' peak memory.

The API runs exactly as deployed: `tenantry serve --workers N` (uvicorn, uvloop, httptools), or
granian with the same factory. The raw asyncpg baselines (framework-free, and
Litestar with raw asyncpg handlers) run under the same server with the same workers. Each gets the environment `tenantry serve` reads (DATABASE_URL, secrets, pool size).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psutil

import tenantry
from tenantry.settings import Settings

ServerKind = Literal["uvicorn", "granian"]
Target = Literal["app", "raw", "litestar"]

APP_FACTORY = "tenantry.app:create_app_from_env"
RAW_FACTORY = "tenantry.tools.bench.raw_app:create_raw_app_from_env"
LITESTAR_FACTORY = "tenantry.tools.bench.raw_litestar:create_raw_litestar_app_from_env"
FACTORIES: dict[Target, str] = {"app": APP_FACTORY, "raw": RAW_FACTORY, "litestar": LITESTAR_FACTORY}
READY_PATHS: dict[Target, str] = {"app": "/health/live", "raw": "/raw/health", "litestar": "/raw/health"}


def free_port(ports: tuple[int, int] | None = None) -> int:
    """A free local port: any (the system's choice), or the first free one in `ports` (first, last)."""
    candidates = [0] if ports is None else list(range(ports[0], ports[1] + 1))
    for candidate in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no free port in {ports[0]}-{ports[1]}" if ports else "no free port")


def server_command(kind: ServerKind, target: Target, workers: int, port: int) -> list[str]:
    from tenantry.http.protocol import HTTPTOOLS_PROTOCOL

    if kind == "uvicorn" and target == "app":
        # The production command itself.
        return [sys.executable, "-m", "tenantry", "serve", "--workers", str(workers), "--port", str(port)]
    factory = FACTORIES[target]
    if kind == "uvicorn":
        # What `tenantry serve` passes to uvicorn.run, on the command line.
        return [
            sys.executable, "-m", "uvicorn", factory, "--factory", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", HTTPTOOLS_PROTOCOL,
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "granian", factory, "--factory", "--interface", "asgi", "--workers", str(workers),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def server_environment(
    settings: Settings, port: int, workers: int, auth_cache_ttl_s: float = 60.0, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TENANTRY_", "DATABASE_URL"))}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "TENANTRY_TOKEN_PEPPER": settings.token_pepper,
            "TENANTRY_APP_PASSWORD": settings.app_password,
            "TENANTRY_DB_POOL_SIZE": str(settings.db_pool_size),
            "TENANTRY_DB_MAX_OVERFLOW": str(settings.db_max_overflow),
            "TENANTRY_WORKERS": str(workers),
            "TENANTRY_HOST": "127.0.0.1",
            "TENANTRY_PORT": str(port),
            "TENANTRY_LOG_LEVEL": "WARNING",
            # Set explicitly (every TENANTRY_* of this shell was dropped above): 0 measures the uncached path.
            "TENANTRY_AUTH_CACHE_TTL_S": f"{auth_cache_ttl_s:g}",
            **(extra or {}),
        }
    )
    # The workers import tenantry from wherever this process did (a checkout, not only the install).
    source = str(Path(tenantry.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class RunningServer:
    label: str
    kind: ServerKind
    target: Target
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    peak_rss_bytes: dict[int, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the children (not multiprocessing's helpers), else the master."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        workers = []
        for child in children:
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    workers.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return workers or [self.process.pid]

    def sample_memory(self) -> dict[int, int]:
        """VmHWM (peak resident set) of each worker, kept across samples (a worker's peak only grows)."""
        for pid in self.worker_pids():
            peak = read_peak_rss(pid)
            if peak is not None:
                self.peak_rss_bytes[pid] = max(peak, self.peak_rss_bytes.get(pid, 0))
        return self.peak_rss_bytes

    def stop(self) -> None:
        if self.process.poll() is None:
            self.sample_memory()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def read_peak_rss(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def start(
    label: str,
    kind: ServerKind,
    target: Target,
    settings: Settings,
    workers: int,
    log_dir: Path,
    auth_cache_ttl_s: float = 60.0,
    extra_env: dict[str, str] | None = None,
    ports: tuple[int, int] | None = None,
) -> RunningServer:
    """Start a server process and wait until every worker answers (or fail with its log)."""
    port = free_port(ports)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{label}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 -- our own fixed command line
            server_command(kind, target, workers, port),
            env=server_environment(settings, port, workers, auth_cache_ttl_s, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(label, kind, target, workers, port, process, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: RunningServer, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + READY_PATHS[server.target]
    # Several answers in a row on fresh connections: with N workers the first answer can come
    # from the first worker up while the others still import.
    streak = 0
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.label} exited with {server.process.returncode}: {_tail(server.log_path)}")
        try:
            ok = httpx.get(url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        streak = streak + 1 if ok else 0
        if streak >= 4 * server.workers and (server.workers == 1 or len(server.worker_pids()) >= server.workers):
            return
        time.sleep(0.05 if ok else 0.25)
    raise RuntimeError(f"{server.label} did not answer within {timeout:.0f} s: {_tail(server.log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
