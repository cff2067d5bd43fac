"""A correct `Allow` header on the automatic OPTIONS answer.

Litestar 2 builds each path's OPTIONS handler while a controller's handlers are still being
registered one by one, so its `Allow` lists only the methods known at that moment
(litestar-org/litestar#4169, fixed in Litestar 3 only): `OPTIONS /v1/lookups` answered
`Allow: OPTIONS, POST` although GET is served too. The final routes know all their methods; this
before_send hook rewrites the header from them.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


class FixAllowHeader:
    """before_send hook: `Allow` on OPTIONS answers lists every method of the matched route."""

    def __init__(self) -> None:
        # Built on first use: the routes are only complete once the app is.
        self._allowed: dict[int, bytes] | None = None

    # A coroutine: Litestar runs a plain-function hook with sync_to_thread, a worker-thread hop
    # for every message of every answer (two per request), a sixth of a request's CPU in a profile.
    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        if self._allowed is None:
            self._allowed = _allowed_by_options_handler(scope["app"])
        methods = self._allowed.get(id(scope.get("route_handler")))
        if methods is not None:
            headers = [(name, value) for name, value in message.get("headers", ()) if name.lower() != b"allow"]
            message["headers"] = [*headers, (b"allow", methods)]


def _allowed_by_options_handler(app: Litestar) -> dict[int, bytes]:
    allowed = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute) and (entry := route.route_handler_map.get("OPTIONS")) is not None:
            allowed[id(entry[0])] = ", ".join(sorted(route.methods)).encode()
    return allowed
