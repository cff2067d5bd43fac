"""OpenTelemetry tracing (TENANTRY_TRACING, off by default), with the ecosystem's instrumentation.

- Every HTTP request gets a server span from opentelemetry-instrumentation-asgi, wrapped around
  the request log (app.py), so the span covers router 404s and 405s too. The request log then
  names it `METHOD /route/{template}` and adds `http.route`, `tenantry.request_id` and
  `tenantry.workspace_id` (http/requestlog.py). The span starts named after the method only:
  the raw path, with its ids, is not a span name.
- Every SQL statement on the app's engine gets a child span from
  opentelemetry-instrumentation-sqlalchemy (the statement text with placeholders, never values).
- Headers are never recorded unless the operator asks through OTEL_INSTRUMENTATION_HTTP_CAPTURE_*;
  even then the credentials are replaced by "[REDACTED]", so a token cannot reach a trace.

Spans go over OTLP/HTTP to the collector the standard OTEL_EXPORTER_OTLP_* variables name
(default http://localhost:4318); OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply as usual.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import get_meter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import __version__
from tenantry.db.engine import observe_statements

# Header names whose values are never recorded, whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_* says.
SECRET_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie", "idempotency-key"]


def build_tracer_provider() -> TracerProvider:
    """The OTLP exporter, batched; resource attributes from the OTEL_* variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "tenantry", "service.version": __version__}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The route template is known only after routing: the request log renames the span.
    return str(scope.get("method") or "HTTP"), {}


def traced_asgi(app: Any, provider: trace.TracerProvider) -> OpenTelemetryMiddleware:
    """`app` inside a server span per request."""
    return OpenTelemetryMiddleware(
        app,
        default_span_details=_span_details,
        tracer_provider=provider,
        http_capture_headers_sanitize_fields=SECRET_HEADERS,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    )


def trace_engine(engine: AsyncEngine, provider: trace.TracerProvider) -> None:
    """A span per SQL statement on `engine`, as children of the request's span."""
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", tracer_provider=provider)
    usage = get_meter("tenantry").create_up_down_counter(
        "db.client.connections.usage", unit="connections", description="Connections in the pool by state."
    )
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]
    observe_statements(engine)  # a span per statement: no read may bypass the engine's events
