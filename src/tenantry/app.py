"""The application factory: `create_app(settings)` builds one fully configured app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import Receive, Scope, Send

from tenantry import __version__
from tenantry.auth.middleware import AuthenticationMiddleware
from tenantry.core.body import validate_json_body
from tenantry.core.db import create_engine, platform_session_factory, tenant_session_factory
from tenantry.core.dependencies import (
    provide_admin,
    provide_db_session,
    provide_platform_session,
    provide_principal,
)
from tenantry.core.pagination import cursor_key
from tenantry.core.problems import handle_exception
from tenantry.core.requestlog import log_requests
from tenantry.health import live, ready
from tenantry.routes import ROUTES
from tenantry.settings import Settings


class TenantryApp(Litestar):
    """Litestar with the request log wrapped around everything, router 404s and 405s included."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await log_requests(super().__call__, scope, receive, send)
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

    return TenantryApp(
        route_handlers=[live, ready, *ROUTES],
        lifespan=[database],
        dependencies={
            "db_session": Provide(provide_db_session),
            "platform_session": Provide(provide_platform_session),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "admin": Provide(provide_admin, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(AuthenticationMiddleware)],
        before_request=validate_json_body,
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Tenantry API",
            version=__version__,
            description="Multi-tenant API. Tenant routes (/v1) take `Authorization: Bearer tnt_...` and act on "
            "that token's workspace only; platform admin routes (/admin/v1) take `Bearer tna_...` admin tokens.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        ),
        logging_config=None,
        debug=False,
        on_app_init=[_set_state(settings)],
    )


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
