"""Which routes are tenant routes: from the app's own routing table and from its OpenAPI document.

A tenant route is every (method, path template) the app serves that is neither public (the
authentication middleware's `PUBLIC_PATHS`) nor under /admin/. In process both sources are read
and must agree, because against a deployment the document is all the prober can see: a route
missing from it would escape every probe there. HEAD is derived for every GET route, since a
server may answer it (Litestar answers 405) and that answer must not tell B's ids apart either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from litestar import Litestar
from litestar.routes import HTTPRoute

from tenantry.auth.middleware import ADMIN_PATHS, PUBLIC_PATHS

PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# OPTIONS answers come from Litestar's generated handler, which reads no data; TRACE is not served.
_DOCUMENT_METHODS = ("get", "post", "put", "patch", "delete", "head")
_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")


class Route(NamedTuple):
    """One operation: `Route("GET", "/v1/products/{product_id}")`."""

    method: str
    path: str

    @classmethod
    def parse(cls, key: str) -> Route:
        """`"GET /v1/products/{product_id}"` -> Route; how samples name the routes they cover."""
        method, path = key.split(" ", 1)
        return cls(method.upper(), path)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(_PARAMETER.findall(self.path))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def is_tenant_path(path: str) -> bool:
    """A path that takes a tenant token: neither public nor the platform admin surface."""
    concrete = _PARAMETER.sub("x", path)
    return not PUBLIC_PATHS.match(concrete) and not ADMIN_PATHS.match(concrete)


def with_head(routes: Iterable[Route]) -> set[Route]:
    found = set(routes)
    return found | {Route("HEAD", r.path) for r in found if r.method == "GET"}


def routes_of_app(app: Litestar) -> set[Route]:
    """Every tenant (method, template) in the app's routing table, generated OPTIONS left out."""
    found: set[Route] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not is_tenant_path(route.path_format):
            continue
        for handler in route.route_handlers:
            if handler.handler_name == "options_handler":  # Litestar's own, one per path
                continue
            found |= {Route(method, route.path_format) for method in handler.http_methods if method in PROBED_METHODS}
    return with_head(found)


def routes_of_document(document: Mapping[str, Any]) -> set[Route]:
    """Every tenant (method, template) an OpenAPI document lists."""
    found: set[Route] = set()
    for path, item in (document.get("paths") or {}).items():
        if not is_tenant_path(path) or not isinstance(item, dict):
            continue
        found |= {Route(method.upper(), path) for method in _DOCUMENT_METHODS if method in item}
    return with_head(found)


def query_parameters(document: Mapping[str, Any], route: Route) -> frozenset[str]:
    """The query parameters the document declares for a route (HEAD reads its GET's)."""
    item = (document.get("paths") or {}).get(route.path) or {}
    method = "get" if route.method == "HEAD" else route.method.lower()
    operation = item.get(method) or {}
    parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
    return frozenset(p["name"] for p in parameters if isinstance(p, dict) and p.get("in") == "query" and "name" in p)
