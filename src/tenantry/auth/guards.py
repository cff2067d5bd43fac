"""Route guards: the permission a route needs, checked against the token AND the member's role.

They are coroutines although they never await: Litestar runs a plain-function guard in a worker
thread (sync_to_thread), which cost a thread hop on every request.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from tenantry.auth.principal import AdminPrincipal, Principal
from tenantry.core.errors import PermissionDenied, Unauthenticated

_REFUSED = "A valid bearer token is required."


def requires_permission(resource: str, permission: str) -> Guard:
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal = tenant_principal(connection)
        if not principal.allows(resource, permission):
            raise PermissionDenied(resource, permission)

    guard.__name__ = f"requires_{resource}_{permission}"
    return guard


def tenant_principal(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """The request's tenant caller, or 401 (an admin token is not one)."""
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthenticated(_REFUSED)
    return principal


async def requires_tenant_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Any valid tenant token: what a member may always do about themselves."""
    tenant_principal(connection)


async def requires_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Admin routes: a platform admin token, never a tenant token (the middleware already checks)."""
    if not isinstance(connection.scope.get("user"), AdminPrincipal):
        raise Unauthenticated(_REFUSED)
