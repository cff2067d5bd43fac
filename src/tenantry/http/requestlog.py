"""Request ids and the access log, around everything (including 404 and 405 from the router).

Each request is logged once, as one JSON line, with its request id, workspace id, route, status
and duration. Headers are never logged, so a token cannot end up in a log. The same place feeds
the request metrics and names the trace span (core/metrics.py, app.py): one hook per request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import msgspec
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send
from opentelemetry import trace

from tenantry.auth.principal import Principal
from tenantry.core.metrics import Metrics

access_log = logging.getLogger("tenantry.access")
# The request id of the request being served, for the audit log; None outside a request.
current_request_id: ContextVar[str | None] = ContextVar("tenantry_request_id", default=None)
# A client-chosen request id is kept only if it is short and plain, so it cannot inject into logs.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.match(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID per request


def _route(scope: Scope) -> str:
    # The template ("/v1/products/{product_id}"), not the path: ids stay out of route metrics.
    return scope.get("path_template") or "<unmatched>"


async def log_requests(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    metrics: Metrics | None = None,
    traced: bool = False,
    on_start: Callable[[HTTPResponseStartEvent, Scope], None] | None = None,
) -> None:
    """Run `app` with the request id set, and log it when it ends. `on_start` sees (and may
    change) the answer's start message before it is sent: the app's other header fixes ride in
    this one `send` wrapper instead of each wrapping every answer again."""
    request_id = _request_id(scope)
    request_id_header = (b"request-id", request_id.encode("latin-1"))
    reset = current_request_id.set(request_id)
    started = time.perf_counter()
    status = 500

    async def send_with_request_id(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            if on_start is not None:
                on_start(message, scope)
            # Appended: nothing inside sets Request-Id (a replayed answer does not store it).
            message["headers"] = [*message.get("headers", ()), request_id_header]
            if traced:
                # Now, not in `finally`: the server span ends with the last body message.
                _describe_span(scope, request_id)
        await send(message)

    try:
        await app(scope, receive, send_with_request_id)
    finally:
        seconds = time.perf_counter() - started
        principal = scope.get("user")
        method = str(scope.get("method", ""))
        route = _route(scope)
        workspace_id = str(principal.tenant_id) if isinstance(principal, Principal) else None
        record: dict[str, Any] = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "workspace_id": workspace_id,
        }
        access_log.info(msgspec.json.encode(record).decode(), extra={"access": record})
        if metrics is not None:
            metrics.observe_request(method, route, status, seconds)
        current_request_id.reset(reset)


def _describe_span(scope: Scope, request_id: str) -> None:
    """Name the server span after the route template and tag it with the workspace (never a
    token: headers are not recorded, see http/tracing.py). Routing and authentication are over
    by the time the answer starts, so both are known."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    route = _route(scope)
    span.update_name(f"{scope.get('method', 'HTTP')} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("tenantry.request_id", request_id)
    principal = scope.get("user")
    if isinstance(principal, Principal):
        span.set_attribute("tenantry.workspace_id", str(principal.tenant_id))
