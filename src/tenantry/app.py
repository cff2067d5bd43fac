"""The application factory: `create_app(settings)` builds one fully configured app."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import HTTPResponseStartEvent, LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import TracerProvider

from tenantry import __version__
from tenantry.auth.cache import AuthChangeListener, PrincipalCache
from tenantry.auth.middleware import AuthenticationMiddleware
from tenantry.core.metrics import Metrics
from tenantry.db.engine import create_engine, fill_pool
from tenantry.http.allow import FixAllowHeader
from tenantry.http.dependencies import (
    provide_admin,
    provide_db_session,
    provide_platform_session,
)
from tenantry.http.edge import allow_head, serve_edge_cases
from tenantry.http.health import live, ready
from tenantry.http.idempotency import IdempotencyMiddleware
from tenantry.http.limits import RateLimitMiddleware, RequestLimits
from tenantry.http.openapi import ApiDocumentation
from tenantry.http.problems import handle_exception
from tenantry.http.request_checks import check_request
from tenantry.http.requestlog import log_requests
from tenantry.http.tracing import build_tracer_provider, trace_engine, traced_asgi
from tenantry.routes import ROUTES
from tenantry.settings import Settings
from tenantry.tenancy.pagination import cursor_key
from tenantry.tenancy.session import login_session_factory, platform_session_factory, tenant_session_factory

API_DESCRIPTION = """Multi-tenant API. Tenant routes (/v1) take `Authorization: Bearer tnt_...` and act on that \
token's workspace only; platform admin routes (/admin/v1) take `Bearer tna_...` admin tokens.

Errors are RFC 9457 problem details (`application/problem+json`). Every answer carries a `Request-Id` \
header (a valid client `X-Request-Id` is kept). Properties are snake_case everywhere. A POST may carry \
an `Idempotency-Key`: repeated within 24 hours, it gets the first successful answer again."""


# The API documentation UI's scripts, served by the app itself (docs_ui/README.md).
DOCS_UI = Path(__file__).parent / "http" / "docs_ui"
DOCS_UI_PATH = "/schema/assets"
# Scalar's defaults reach scalar.com (web fonts, telemetry, its AI agent): off, so /schema works offline.
SCALAR_OPTIONS = {"withDefaultFonts": False, "telemetry": False, "agent": {"disabled": True}}


class TenantryApp(Litestar):
    """Litestar with the request log wrapped around everything, router 404s and 405s included.

    The request log is also the one per-request hook of the metrics and of tracing: with tracing
    on, OpenTelemetry's ASGI middleware wraps it, so the request log can name the span.
    """

    metrics: Metrics | None = None
    traced: OpenTelemetryMiddleware | None = None
    # Per app, made on its first answer: it maps this app's route handlers, so one shared by two
    # apps in a process (the tests, a second app for seeding) would know only the first app's.
    _allow_header: FixAllowHeader | None = None

    def instrument(self, metrics: Metrics | None, tracer_provider: TracerProvider | None) -> None:
        self.metrics = metrics
        if tracer_provider is not None:
            self.traced = traced_asgi(self._logged_traced, tracer_provider)

    async def _logged_traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        await log_requests(self._routed, scope, receive, send, self.metrics, traced=True, on_start=self._answer_starts)

    def _answer_starts(self, message: HTTPResponseStartEvent, scope: Scope) -> None:
        # The header fixes of http/allow.py and http/edge.py, in the request log's `send` wrapper:
        # one wrapper around every answer instead of three.
        allow_header = self._allow_header
        if allow_header is None:
            allow_header = self._allow_header = FixAllowHeader()
        allow_header.rewrite(message, scope)
        allow_head(message)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            # HEAD and encoded slashes, before the router (http/edge.py).
            await serve_edge_cases(super().__call__, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def __call__(
        self, scope: Scope | LifeSpanScope, receive: Receive | LifeSpanReceive, send: Send | LifeSpanSend
    ) -> None:
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
        elif self.traced is not None:
            await self.traced(scope, receive, send)  # type: ignore[arg-type]
        else:
            await log_requests(self._routed, scope, receive, send, self.metrics, on_start=self._answer_starts)  # type: ignore[arg-type]


def create_app(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> Litestar:
    """The app for `settings`. With `settings.tracing`, spans go to `tracer_provider` (tests pass
    one with an in-memory exporter), else to the OTLP exporter of http/tracing.py."""
    settings.require_secrets()
    metrics = Metrics() if settings.metrics else None
    owns_provider = settings.tracing and tracer_provider is None
    if owns_provider:
        tracer_provider = build_tracer_provider()
    elif not settings.tracing:
        tracer_provider = None

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.app_url, settings, metrics=metrics)
        if tracer_provider is not None:
            trace_engine(engine, tracer_provider)
        app.state.engine = engine
        app.state.session_factory = tenant_session_factory(engine, settings)
        app.state.platform_session_factory = platform_session_factory(engine, settings)
        app.state.login_session_factory = login_session_factory(engine, settings)
        try:
            if settings.db_pool_prefill:
                # Never fails startup: an unreachable database is logged, /health/ready reports it.
                await fill_pool(engine, settings.db_pool_size, settings.db_pool_timeout_s)
            yield
        finally:
            await engine.dispose()
            if owns_provider and tracer_provider is not None:
                tracer_provider.shutdown()  # type: ignore[attr-defined]  # the SDK's: flushes the last spans
            if metrics is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # this worker's gauges leave the sums

    @asynccontextmanager
    async def principal_cache(app: Litestar) -> AsyncIterator[None]:
        if not settings.auth_cache_enabled:
            app.state.principal_cache = None
            yield
            return
        cache = PrincipalCache(settings.auth_cache_ttl_s, metrics=metrics)
        listener = AuthChangeListener(settings.auth_listen_dsn, cache)
        app.state.principal_cache = cache
        app.state.auth_listener = listener
        await listener.start()  # until it has subscribed, the cache serves nothing
        try:
            yield
        finally:
            await listener.stop()

    @asynccontextmanager
    async def request_limits(app: Litestar) -> AsyncIterator[None]:
        limits = RequestLimits.from_settings(settings, metrics)
        app.state.limits = limits
        try:
            yield
        finally:
            await limits.close()

    @asynccontextmanager
    async def frozen_heap(app: Litestar) -> AsyncIterator[None]:
        # Last at startup: what exists now (modules, routes, schemas, the pools) lives as long as the
        # worker. Frozen, the collector's full collections stop walking it on every pass; a request's
        # garbage is collected as before (docs/performance.md).
        gc.collect()
        gc.freeze()
        yield

    documentation = ApiDocumentation(
        title="Tenantry API",
        version=__version__,
        description=API_DESCRIPTION,
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=[
            ScalarRenderPlugin(
                js_url=f"{DOCS_UI_PATH}/scalar/standalone.js",
                css_url=f"{DOCS_UI_PATH}/scalar/tenantry.css",
                options=SCALAR_OPTIONS,
                favicon=_FAVICON,
            ),
            SwaggerRenderPlugin(
                js_url=f"{DOCS_UI_PATH}/swagger-ui/swagger-ui-bundle.js",
                css_url=f"{DOCS_UI_PATH}/swagger-ui/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_UI_PATH}/swagger-ui/swagger-ui-standalone-preset.js",
                favicon=_FAVICON,
            ),
        ],
    )
    docs_ui = create_static_files_router(
        DOCS_UI_PATH,
        directories=[DOCS_UI],
        include_in_schema=False,
        name="docs-ui",
        cache_control=CacheControlHeader(max_age=3600),
    )
    app = TenantryApp(
        route_handlers=[live, ready, *ROUTES, docs_ui],
        lifespan=[database, principal_cache, request_limits, frozen_heap],
        dependencies={
            "db_session": Provide(provide_db_session),
            "platform_session": Provide(provide_platform_session),
            "admin": Provide(provide_admin, sync_to_thread=False),
        },
        # Outermost first: the limits need the verified workspace and token, and refuse before
        # any database work; idempotency runs inside both, so its keys belong to that token.
        middleware=[
            DefineMiddleware(AuthenticationMiddleware),
            DefineMiddleware(RateLimitMiddleware),
            DefineMiddleware(IdempotencyMiddleware),
        ],
        before_request=check_request,
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=documentation,
        logging_config=None,
        debug=False,
        on_app_init=[_set_state(settings, metrics)],
    )
    documentation.describe(app)
    app.instrument(metrics, tracer_provider)
    return app


_FAVICON = f"<link rel='icon' type='image/png' href='{DOCS_UI_PATH}/swagger-ui/favicon-32x32.png'>"


def _set_state(settings: Settings, metrics: Metrics | None) -> Any:
    def init(app_config: Any) -> Any:
        app_config.state.update(
            {
                "settings": settings,
                "cursor_key": cursor_key(settings.token_pepper),
                "metrics": metrics,
            }
        )
        return app_config

    return init


def create_app_from_env() -> Litestar:
    """Factory for `tenantry serve` workers: each reads the same environment."""
    from tenantry.core.logs import configure_logging
    from tenantry.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
