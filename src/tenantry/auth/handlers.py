"""Route decorators of every Tenantry controller: Litestar's, with guards called on the handler itself.

Litestar passes each guard a shallow copy of the route handler, made on every request for every
guard, so a guard cannot change the handler others see. Tenantry's guards (guards.py) never
read or change it, and the copy was 4% of a product read's time (docs/performance.md). Everything
else, including the order guards run in and what they raise, is Litestar's.
"""

from __future__ import annotations

from typing import Any

import litestar
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler


async def _authorize(handler: HTTPRouteHandler, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    for guard in handler.resolve_guards():
        await guard(connection, handler)  # type: ignore[misc]  # resolve_guards made each one a coroutine


class get(litestar.get):  # named like the decorator it replaces
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        await _authorize(self, connection)


class post(litestar.post):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        await _authorize(self, connection)


class patch(litestar.patch):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        await _authorize(self, connection)


class put(litestar.put):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        await _authorize(self, connection)


class delete(litestar.delete):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        await _authorize(self, connection)


GUARDED_HANDLERS = (get, post, patch, put, delete)
