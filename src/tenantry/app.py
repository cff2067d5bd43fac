"""The application factory: `create_app(settings)` builds one fully configured app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from tenantry import __version__
from tenantry.auth.cache import AuthChangeListener, PrincipalCache
from tenantry.auth.middleware import AuthenticationMiddleware
from tenantry.db.engine import create_engine
from tenantry.http.allow import FixAllowHeader
from tenantry.http.dependencies import (
    provide_admin,
    provide_db_session,
    provide_platform_session,
)
from tenantry.http.health import live, ready
from tenantry.http.idempotency import IdempotencyMiddleware
from tenantry.http.limits import RateLimitMiddleware, RequestLimits
from tenantry.http.openapi import ApiDocumentation
from tenantry.http.problems import handle_exception
from tenantry.http.request_checks import check_request
from tenantry.http.requestlog import log_requests
from tenantry.routes import ROUTES
from tenantry.settings import Settings
from tenantry.tenancy.pagination import cursor_key
from tenantry.tenancy.session import platform_session_factory, tenant_session_factory

API_DESCRIPTION = """Multi-tenant API. Tenant routes (/v1) take `Authorization: Bearer tnt_...` and act on that \
token's workspace only; platform admin routes (/admin/v1) take `Bearer tna_...` admin tokens.

Errors are RFC 9457 problem details (`application/problem+json`). Every answer carries a `Request-Id` \
header (a valid client `X-Request-Id` is kept). Properties are snake_case everywhere. A POST may carry \
an `Idempotency-Key`: repeated within 24 hours, it gets the first successful answer again."""


class TenantryApp(Litestar):
    """Litestar with the request log wrapped around everything, router 404s and 405s included."""

    async def __call__(
        self, scope: Scope | LifeSpanScope, receive: Receive | LifeSpanReceive, send: Send | LifeSpanSend
    ) -> None:
        if scope["type"] == ScopeType.HTTP:
            await log_requests(super().__call__, scope, receive, send)  # type: ignore[arg-type]
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Litestar:
    settings.require_secrets()

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.app_url, settings)
        app.state.engine = engine
        app.state.session_factory = tenant_session_factory(engine, settings)
        app.state.platform_session_factory = platform_session_factory(engine, settings)
        try:
            yield
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def principal_cache(app: Litestar) -> AsyncIterator[None]:
        if not settings.auth_cache_enabled:
            app.state.principal_cache = None
            yield
            return
        cache = PrincipalCache(settings.auth_cache_ttl_s)
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
        limits = RequestLimits.from_settings(settings)
        app.state.limits = limits
        try:
            yield
        finally:
            await limits.close()

    documentation = ApiDocumentation(
        title="Tenantry API",
        version=__version__,
        description=API_DESCRIPTION,
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
    )
    app = TenantryApp(
        route_handlers=[live, ready, *ROUTES],
        lifespan=[database, principal_cache, request_limits],
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
        before_send=[FixAllowHeader()],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=documentation,
        logging_config=None,
        debug=False,
        on_app_init=[_set_state(settings)],
    )
    documentation.describe(app)
    return app


def _set_state(settings: Settings) -> Any:
    def init(app_config: Any) -> Any:
        app_config.state.update(
            {
                "settings": settings,
                "cursor_key": cursor_key(settings.token_pepper),
            }
        )
        return app_config

    return init


def create_app_from_env() -> Litestar:
    """Factory for `tenantry serve` workers: each reads the same environment."""
    from tenantry.core.logs import configure_logging
    from tenantry.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
