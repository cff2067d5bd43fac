"""Route guards: the permission a route needs, checked against the token AND the member's role."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from tenantry.core.context import Principal
from tenantry.core.errors import PermissionDenied, Unauthenticated


def requires_permission(resource: str, permission: str) -> Guard:
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthenticated("A valid bearer token is required.")
        if not principal.allows(resource, permission):
            raise PermissionDenied(resource, permission)

    guard.__name__ = f"requires_{resource}_{permission}"
    return guard
