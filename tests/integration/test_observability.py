"""Metrics (a scrape parses and carries the expected series), tracing (spans reach an in-memory
exporter with the workspace id and the route template, never the token) and JSON logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tenantry.app import create_app
from tenantry.core.logs import json_formatter
from tenantry.core.metrics import Metrics
from tenantry.settings import Settings
from tests.support import Tenant, auth_changes_delivered, create_product
from tests.support.limits import limited_app

Client = AsyncTestClient[Litestar]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app: Litestar) -> Samples:
    """Every sample of the app's registry, as Prometheus would read the exposition text."""
    metrics: Metrics = app.state.metrics
    text = generate_latest(metrics.registry).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[tuple[Litestar, Client]]:
    app = create_app(msgspec.structs.replace(settings, metrics=True))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield app, client


async def test_metrics_are_off_by_default(app: Litestar) -> None:
    assert app.state.metrics is None


async def test_a_scrape_parses_and_carries_the_expected_series(
    metered: tuple[Litestar, Client], tenant_a: Tenant
) -> None:
    app, client = metered
    await auth_changes_delivered(app)
    product = await create_product(client, tenant_a, sku="OBS-1")
    for _ in range(3):
        assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
    assert (await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers)).status_code == 200
    assert (await client.get("/no/such/path")).status_code == 404
    duplicate = {"name": "Again", "price_cents": 1, "currency": "EUR", "sku": "OBS-1"}
    assert (await client.post("/v1/products", json=duplicate, headers=tenant_a.headers)).status_code == 409

    samples = scrape(app)
    count = "tenantry_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/v1/products", status="200") == 3
    # The route template, never the path with its id.
    assert value(samples, count, method="GET", route="/v1/products/{product_id}", status="200") == 1
    assert not any(str(product["id"]) in str(labels) for _, labels in samples)
    assert value(samples, count, method="GET", route="<unmatched>", status="404") == 1
    assert value(samples, count, method="POST", route="/v1/products", status="201") == 1
    assert value(samples, count, method="POST", route="/v1/products", status="409") == 1
    latency_buckets = [
        labels
        for name, labels in samples
        if name == "tenantry_http_request_duration_seconds_bucket" and ("route", "/v1/products") in labels
    ]
    assert latency_buckets
    # The first request of the token asked the database, the next ones were served from memory.
    assert value(samples, "tenantry_auth_cache_lookups_total", result="miss") >= 1
    assert value(samples, "tenantry_auth_cache_lookups_total", result="hit") >= 4
    # The duplicate SKU: a unique violation, SQLSTATE class 23.
    assert value(samples, "tenantry_db_errors_total", sqlstate_class="23") == 1
    assert value(samples, "tenantry_db_pool_size") == app.state.settings.db_pool_size
    for gauge in ("tenantry_db_pool_connections_in_use", "tenantry_db_pool_overflow", "tenantry_db_pool_waiting"):
        assert (gauge, frozenset()) in samples, gauge
    assert value(samples, "tenantry_db_pool_connections_in_use") == 0  # every request gave its connection back


async def test_the_rate_limit_counter_takes_scope_and_limit(metered: tuple[Litestar, Client]) -> None:
    app, _ = metered
    metrics: Metrics = app.state.metrics
    metrics.count_rate_limited("workspace", "rate")
    metrics.count_rate_limited("token", "concurrency")
    metrics.count_rate_limited("token", "concurrency")
    samples = scrape(app)
    assert value(samples, "tenantry_rate_limited_total", scope="workspace", limit="rate") == 1
    assert value(samples, "tenantry_rate_limited_total", scope="token", limit="concurrency") == 2
    with pytest.raises(ValueError, match="scope"):
        metrics.count_rate_limited("tenant", "rate")


async def test_the_pool_gauges_follow_checkouts(metered: tuple[Litestar, Client]) -> None:
    app, _ = metered
    engine = app.state.engine
    async with engine.connect(), engine.connect():
        held = scrape(app)
    assert value(held, "tenantry_db_pool_connections_in_use") == 2
    assert value(scrape(app), "tenantry_db_pool_connections_in_use") == 0


# --- tracing --------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(settings: Settings, spans: InMemorySpanExporter) -> AsyncIterator[tuple[Litestar, Client]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = create_app(msgspec.structs.replace(settings, tracing=True), tracer_provider=provider)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield app, client


def _server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]


async def test_tracing_is_off_by_default(app: Litestar) -> None:
    assert app.traced is None  # type: ignore[attr-defined]


async def test_a_trace_carries_the_workspace_and_the_route_never_the_token(
    traced: tuple[Litestar, Client], spans: InMemorySpanExporter, tenant_a: Tenant
) -> None:
    _, client = traced
    product = await create_product(client, tenant_a)
    spans.clear()
    response = await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers)
    assert response.status_code == 200

    [server] = _server_spans(spans)
    attributes = dict(server.attributes or {})
    assert server.name == "GET /v1/products/{product_id}"
    assert attributes["http.route"] == "/v1/products/{product_id}"
    assert attributes["tenantry.workspace_id"] == str(tenant_a.id)
    assert attributes["tenantry.request_id"] == response.headers["request-id"]
    # The statements of the request are its children: same trace.
    statements = [s for s in spans.get_finished_spans() if s.kind.name == "CLIENT"]
    assert statements, [s.name for s in spans.get_finished_spans()]
    assert server.context is not None
    assert all(s.context is not None and s.context.trace_id == server.context.trace_id for s in statements)
    # Nothing anywhere in the trace carries the token or its secret part.
    for span in spans.get_finished_spans():
        for key, recorded in (span.attributes or {}).items():
            assert tenant_a.token not in str(recorded), key
            assert tenant_a.token[4:20] not in str(recorded), key


async def test_an_unauthenticated_request_is_traced_without_a_workspace(
    traced: tuple[Litestar, Client], spans: InMemorySpanExporter
) -> None:
    _, client = traced
    assert (await client.get("/v1/products", headers={"Authorization": "Bearer nonsense"})).status_code == 401
    [server] = _server_spans(spans)
    attributes = dict(server.attributes or {})
    assert "tenantry.workspace_id" not in attributes
    assert attributes["http.route"] == "/v1/products"
    assert "nonsense" not in json.dumps({k: str(v) for k, v in attributes.items()})


async def test_captured_headers_never_show_the_token(
    settings: Settings, spans: InMemorySpanExporter, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who asks OpenTelemetry to record the Authorization header gets it redacted."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization,x-request-id")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = create_app(msgspec.structs.replace(settings, tracing=True), tracer_provider=provider)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        headers = {**tenant_a.headers, "X-Request-Id": "trace-header-test"}
        assert (await client.get("/v1/products", headers=headers)).status_code == 200
    [server] = _server_spans(spans)
    attributes = {key: str(recorded) for key, recorded in (server.attributes or {}).items()}
    captured = {key: recorded for key, recorded in attributes.items() if "header" in key}
    assert any("trace-header-test" in recorded for recorded in captured.values()), captured  # capture works
    assert all(tenant_a.token not in recorded for recorded in attributes.values())
    assert any("REDACTED" in recorded for recorded in captured.values()), captured


# --- JSON logs ------------------------------------------------------------------------------------


async def test_json_logs_put_the_access_fields_at_the_top_level(
    client: Client, tenant_a: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tenantry.access")
    assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
    [record] = [r for r in caplog.records if r.name == "tenantry.access"]

    line = json_formatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["logger"] == "tenantry.access"
    assert document["level"] == "INFO"
    assert document["route"] == "/v1/products"
    assert document["status"] == 200
    assert document["workspace_id"] == str(tenant_a.id)
    assert "message" not in document  # the fields themselves, not a JSON string inside a string
    assert tenant_a.token not in line


def test_json_logs_keep_other_records_and_their_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("tenantry.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("pool %s", "busy")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"], first["message"]) == ("WARNING", "tenantry.test-json", "pool busy")
    assert first["time"].endswith("+00:00")
    assert second["message"] == "failed"
    assert "RuntimeError: boom" in second["exc_info"]


async def test_a_refused_request_counts_in_the_rate_limit_series(settings: Settings, tenant_a: Tenant) -> None:
    """The limits' one refusal counter feeds tenantry_rate_limited_total with its scope and limit."""
    async with limited_app(settings, metrics=True, limit_token_requests=1, limit_token_window_s=60) as (app, client):
        assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
        assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 429
        samples = scrape(app)
    assert value(samples, "tenantry_rate_limited_total", scope="token", limit="rate") == 1
    assert value(samples, "tenantry_rate_limited_total", scope="workspace", limit="rate") == 0
