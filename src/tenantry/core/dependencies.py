"""Litestar dependency providers shared by every domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.context import Principal
from tenantry.core.errors import Unauthenticated


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """One tenant session per request; its transactions each start with the tenant hook."""
    async with state.session_factory() as session:
        yield session


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthenticated("A valid bearer token is required.")
    return principal
