"""Litestar dependency providers shared by every domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.principal import AdminPrincipal
from tenantry.core.errors import Unauthenticated
from tenantry.http.idempotency import request_session


async def provide_db_session(request: Request[Any, Any, Any], state: State) -> AsyncIterator[AsyncSession]:
    """One tenant session per request; its transactions each start with the tenant hook.

    When the idempotency layer opened the request's session (a POST with an Idempotency-Key), this
    is that session: the layer commits it with the stored answer, and closes it.
    """
    if (owned := request_session(request.scope)) is not None:
        yield owned
        return
    async with state.session_factory() as session:
        yield session


async def provide_platform_session(request: Request[Any, Any, Any], state: State) -> AsyncIterator[AsyncSession]:
    """A platform-role session, for the admin surface and the unauthenticated entry points."""
    if (owned := request_session(request.scope)) is not None:
        yield owned
        return
    async with state.platform_session_factory() as session:
        yield session


def provide_admin(request: Request[Any, Any, Any]) -> AdminPrincipal:
    admin = request.scope.get("user")
    if not isinstance(admin, AdminPrincipal):
        raise Unauthenticated("A valid bearer token is required.")
    return admin
