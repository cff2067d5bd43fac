"""Guards run on the route handler itself, and every guarded route of the app is built that way
(auth/handlers.py; docs/performance.md)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.testing import TestClient

from tenantry.app import create_app
from tenantry.auth.handlers import GUARDED_HANDLERS, get
from tenantry.settings import load_settings

BASE = {
    "DATABASE_URL": "postgresql://admin:secret@db.example:5432/tenantry",
    "TENANTRY_TOKEN_PEPPER": "p" * 32,
    "TENANTRY_APP_PASSWORD": "app-secret",
}


def test_guards_run_in_order_on_the_handler_itself_and_can_refuse() -> None:
    seen: list[tuple[str, int]] = []

    async def first(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        seen.append(("first", id(handler)))

    async def second(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        seen.append(("second", id(handler)))
        if connection.query_params.get("refuse"):
            raise NotAuthorizedException()

    @get("/thing", guards=[first, second], sync_to_thread=False)
    def thing() -> str:
        return "ok"

    app = Litestar([thing])
    with TestClient(app) as client:
        assert client.get("/thing").status_code == 200
        assert client.get("/thing?refuse=1").status_code == 401
    registered = app.route_handler_method_map["/thing"]["GET"]
    assert seen == [("first", id(registered)), ("second", id(registered))] * 2


def test_every_guarded_route_of_the_app_uses_the_tenantry_decorators() -> None:
    # A controller that imported litestar's own decorators would still be guarded, only slower.
    app = create_app(load_settings(BASE))
    guarded = [
        handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if isinstance(handler, HTTPRouteHandler) and handler.resolve_guards()
    ]
    assert len(guarded) > 40
    strangers = [handler.handler_name for handler in guarded if not isinstance(handler, GUARDED_HANDLERS)]
    assert strangers == []
