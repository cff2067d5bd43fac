"""`tenantry serve` exports the metrics of all its workers on the metrics port, never on the API's.

With several uvicorn workers, each writes its values to PROMETHEUS_MULTIPROC_DIR and the
supervisor's exporter sums them: a scrape must count every request, whichever worker served it,
and not see one worker at random.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tenantry.settings import Settings
from tests.support.processes import free_port, server_process

REQUESTS = 40


@contextmanager
def serving(settings: Settings, workers: int, metrics_dir: Path) -> Iterator[tuple[str, str]]:
    port, metrics_port = free_port(), free_port()
    base, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    command = [sys.executable, "-m", "tenantry", "serve", "--port", str(port), "--workers", str(workers)]
    extra_env = {
        "TENANTRY_METRICS": "true",
        "TENANTRY_METRICS_PORT": str(metrics_port),
        "TENANTRY_DB_POOL_SIZE": "3",
        # The production default (the test settings turn it off): each worker opens its pool at startup.
        "TENANTRY_DB_POOL_PREFILL": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with server_process(command, settings, f"{base}/health/ready", extra_env):
        # Every worker has started when each has written its pool gauge.
        deadline = time.monotonic() + 90
        while len(list(metrics_dir.glob("gauge_livesum_*.db"))) < workers:
            assert time.monotonic() < deadline, list(metrics_dir.iterdir())
            time.sleep(0.3)
        yield base, metrics_url


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_a_scrape_sums_every_worker(migrated_settings: Settings, workers: int, tmp_path: Path) -> None:
    with serving(migrated_settings, workers, tmp_path) as (base, metrics_url):

        async def load() -> None:
            # Fresh connections, all at once, so the workers share them.
            async def one() -> int:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/health/live")).status_code

            assert await asyncio.gather(*(one() for _ in range(REQUESTS))) == [200] * REQUESTS

        asyncio.run(load())
        api_metrics = httpx.get(f"{base}/metrics", timeout=5)
        scrapes = [_samples(httpx.get(metrics_url, timeout=5).text) for _ in range(3)]
        live_gauge_files = len(list(tmp_path.glob("gauge_livesum_*.db")))

    assert api_metrics.status_code == 404  # the API's port does not serve them
    for samples in scrapes:  # the same sums whichever way a scrape goes
        key = frozenset({"method": "GET", "route": "/health/live", "status": "200"}.items())
        assert samples[("tenantry_http_request_duration_seconds_count", key)] == REQUESTS
        assert samples[("tenantry_db_pool_size", frozenset())] == 3 * workers
        # The prefill gave every connection back: none in use, none waited for, none beyond the pool.
        for gauge in ("tenantry_db_pool_connections_in_use", "tenantry_db_pool_waiting", "tenantry_db_pool_overflow"):
            assert samples[(gauge, frozenset())] == 0, gauge
    assert live_gauge_files == workers  # one per worker process
    assert not list(tmp_path.glob("gauge_livesum_*.db"))  # a stopped worker leaves the gauges' sums
