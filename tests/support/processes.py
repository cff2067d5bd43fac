"""A real server process for the tests that need one (a parser, several workers): started with the
test database's settings, waited for on a health route, stopped with SIGTERM as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx

from tenantry.settings import Settings
from tenantry.tools.bench.servers import free_port
from tests.support.settings import TEST_APP_PASSWORD, TEST_PEPPER

__all__ = ["free_port", "server_process"]


@contextmanager
def server_process(
    command: Sequence[str], settings: Settings, health_url: str, extra_env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run `command` against the test database until the block ends; fail if it exits or never answers."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "DATABASE_URL"))}
    environment.update(
        {
            "DATABASE_URL": settings.database_url,
            "TENANTRY_TOKEN_PEPPER": TEST_PEPPER,
            "TENANTRY_APP_PASSWORD": TEST_APP_PASSWORD,
            # As the settings say (make_settings: off, see NO_PREFILL there), not the default.
            "TENANTRY_DB_POOL_PREFILL": "true" if settings.db_pool_prefill else "false",
            **(extra_env or {}),
        }
    )
    process = subprocess.Popen(  # noqa: S603 - our own command line
        list(command), env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{command[:4]} did not answer {health_url}"
            time.sleep(0.3)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
