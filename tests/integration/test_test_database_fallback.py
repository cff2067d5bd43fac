"""The issue's run: a Docker engine answers, but no container can start (no registry, no ryuk).

A fake engine on a local port answers pings and refuses everything else the way an offline engine
does ("no such image"). The suite must then say so in one line and run on the embedded server,
instead of failing every database test at setup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests/support/chain_probe.py"
# The probe needs none of the fuzzing plugins, whose imports are most of pytest's start-up time.
QUIET = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:faker")


class OfflineEngine(BaseHTTPRequestHandler):
    """Answers `/_ping` and `/version` like dockerd; every image or container request is a 404."""

    requests: list[str] = []

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path.endswith("/_ping"):
            status, body, kind = 200, b"OK", "text/plain"
        elif path.endswith("/version"):
            status, kind = 200, "application/json"
            body = json.dumps({"ApiVersion": "1.41", "Version": "20.10.24", "Os": "linux", "Arch": "amd64"}).encode()
        else:
            status, kind = 404, "application/json"
            body = json.dumps({"message": "pull access denied: no such image: testcontainers/ryuk"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Api-Version", "1.41")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def offline_engine() -> Iterator[str]:
    OfflineEngine.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OfflineEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "TEST_DATABASE", "DOCKER_", "PYTEST"))
    }
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", *QUIET, *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_an_engine_that_cannot_start_a_container_falls_back_to_the_embedded_server_in_one_line(
    offline_engine: str,
) -> None:
    run = _pytest({"DOCKER_HOST": offline_engine}, PROBE)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    notices = [line for line in output.splitlines() if line.startswith("test database:")]
    assert len(notices) == 1, output
    assert "a Docker engine answers but no container of postgres:18-alpine started" in notices[0]
    assert "using the embedded PostgreSQL instead" in notices[0]
    assert any(r.endswith("/_ping") for r in OfflineEngine.requests)  # the engine was really asked
    summary = output.strip().splitlines()[-1]
    assert "2 passed" in summary, output
    assert "error" not in summary, output  # not one test failed at setup


def test_forcing_the_container_on_that_engine_is_one_clear_error(offline_engine: str) -> None:
    run = _pytest({"DOCKER_HOST": offline_engine, "TENANTRY_TEST_DB": "container"}, PROBE)
    output = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "test database: TENANTRY_TEST_DB=container, but no container of postgres:18-alpine started" in output
    assert "passed" not in output
    assert "embedded" not in output.lower().replace("tenantry_test_db=embedded", ""), output
