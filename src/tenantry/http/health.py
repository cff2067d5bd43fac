"""Liveness and readiness. Neither needs a token; readiness checks the database answers."""

from __future__ import annotations

import asyncio

import msgspec
from litestar.datastructures import State
from sqlalchemy import text

from tenantry.auth.handlers import get
from tenantry.core.errors import ServiceUnavailable


class Health(msgspec.Struct):
    status: str


@get("/health/live", operation_id="healthLive", tags=["Health"], include_in_schema=True)
async def live() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@get("/health/ready", operation_id="healthReady", tags=["Health"])
async def ready(state: State) -> Health:
    """The database answers within two seconds."""
    try:
        async with asyncio.timeout(2):
            async with state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception:
        raise ServiceUnavailable("The database is not reachable.") from None
    return Health(status="ok")
