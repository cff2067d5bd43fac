"""`python3 scripts/dev.py serve` (the README's command) becomes the server, so SIGTERM stops it
and its embedded PostgreSQL. It used to run `tenantry dev` as a child and pass nothing on: the
wrapper died and the server and PostgreSQL kept running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.slow
def test_sigterm_to_the_dev_wrapper_stops_the_server_and_its_postgresql() -> None:
    venv = Path(sys.prefix)
    if not (venv / ".tenantry-installed").exists():
        pytest.skip(f"{venv} is not an environment made by scripts/dev.py")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Not under pytest's basetemp (see tests/conftest.py: the embedded server's own user must reach it).
    parent = Path(tempfile.mkdtemp(prefix="tenantry-devwrap-"))
    data = parent / "dev"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "DATABASE_URL"))}
    environment["TENANTRY_VENV"] = str(venv)
    python3 = shutil.which("python3") or sys.executable  # the README runs the system's python3
    wrapper = subprocess.Popen(  # noqa: S603 - the README's command
        [python3, str(ROOT / "scripts" / "dev.py"), "serve", "--data-dir", str(data), "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    postgres_pid = None
    try:
        deadline = time.monotonic() + 240
        while True:
            assert wrapper.poll() is None, wrapper.stdout.read() if wrapper.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the development service did not start"
            time.sleep(0.5)
        postgres_pid = int((data / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert _alive(postgres_pid)
        # The wrapper's process is now the server itself, not a parent waiting for it.
        command_line = Path(f"/proc/{wrapper.pid}/cmdline").read_bytes().split(b"\0")
        assert b"dev" in command_line
        assert not any(part.endswith(b"scripts/dev.py") for part in command_line)

        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=60) == 0

        deadline = time.monotonic() + 60
        while _alive(postgres_pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(postgres_pid), "the embedded PostgreSQL is still running"
        assert not (data / "pgdata" / "postmaster.pid").exists()
        with socket.socket() as again:  # and nothing listens on the API's port
            again.bind(("127.0.0.1", port))
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        if postgres_pid is not None and _alive(postgres_pid):
            os.kill(postgres_pid, signal.SIGQUIT)
        shutil.rmtree(parent, ignore_errors=True)
