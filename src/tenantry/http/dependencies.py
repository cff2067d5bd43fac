"""Litestar dependency providers shared by every domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.principal import AdminPrincipal
from tenantry.core.errors import Unauthenticated


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """One tenant session per request; its transactions each start with the tenant hook."""
    async with state.session_factory() as session:
        yield session


async def provide_platform_session(state: State) -> AsyncIterator[AsyncSession]:
    """A platform-role session, for the admin surface and the unauthenticated entry points."""
    async with state.platform_session_factory() as session:
        yield session


def provide_admin(request: Request[Any, Any, Any]) -> AdminPrincipal:
    admin = request.scope.get("user")
    if not isinstance(admin, AdminPrincipal):
        raise Unauthenticated("A valid bearer token is required.")
    return admin
