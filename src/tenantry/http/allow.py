"""A correct `Allow` header on the automatic OPTIONS answer.

Litestar 2 builds each path's OPTIONS handler while a controller's handlers are still being
registered one by one, so its `Allow` lists only the methods known at that moment
(litestar-org/litestar#4169, fixed in Litestar 3 only): `OPTIONS /v1/lookups` answered
`Allow: OPTIONS, POST` although GET is served too. The final routes know all their methods;
`FixAllowHeader.rewrite` rewrites the header from them when the answer starts (app.py calls it from
the request log's one `send` wrapper, so no layer of its own wraps every answer).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import HTTPResponseStartEvent, Scope


class FixAllowHeader:
    """`Allow` on OPTIONS answers lists every method of the matched route."""

    def __init__(self) -> None:
        # Built on first use: the routes are only complete once the app is.
        self._allowed: dict[int, bytes] | None = None

    def rewrite(self, message: HTTPResponseStartEvent, scope: Scope) -> None:
        """Called with the answer's start message, before it is sent (a plain call: no thread hop)."""
        if scope.get("method") != "OPTIONS":
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
