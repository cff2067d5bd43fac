"""Two answers the router cannot give right by itself: HEAD, and a slash encoded in the path.

HEAD is answered wherever GET is (RFC 9110, 9.3.2): the request runs as the GET of the same URL,
through routing, authentication, the workspace's isolation and the request limits exactly as a GET,
and only the body is dropped, so status and headers (Content-Length included) are the GET's. The
app sees GET; the server and the access log see HEAD again (uvicorn sends no body for a HEAD, and
checks the length against Content-Length otherwise). `Allow` then lists HEAD beside GET.

ASGI servers decode `%2F` into `path`, so `/v1/products/%2F` reached the router as
`/v1/products//` and was served by the list. No path segment of this API can hold a slash, so a
path with an encoded one matches no route: 404, like any unknown path (docs/05-api-guide.md, Errors).
"""

from __future__ import annotations

import re

from litestar import Request
from litestar.types import ASGIApp, HTTPResponseStartEvent, HTTPScope, Message, Receive, Send

from tenantry.http.problems import NOT_FOUND_DETAIL, problem_response

_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)


def has_encoded_slash(scope: HTTPScope) -> bool:
    raw_path = scope.get("raw_path") or b""
    # ASGI's raw_path has no query string, but some clients (httpx's test transport) include it.
    return _ENCODED_SLASH.search(raw_path.split(b"?", 1)[0]) is not None


async def serve_edge_cases(app: ASGIApp, scope: HTTPScope, receive: Receive, send: Send) -> None:
    """Run `app` for an HTTP request, answering HEAD as GET and refusing encoded slashes."""
    head = scope["method"] == "HEAD"
    if head:
        scope["method"] = "GET"
        send = _without_body(scope, send)
    try:
        if has_encoded_slash(scope):
            response = problem_response(404, NOT_FOUND_DETAIL)
            await response.to_asgi_response(app=None, request=Request(scope))(scope, receive, send)
        else:
            await app(scope, receive, send)
    finally:
        if head:
            scope["method"] = "HEAD"


def _without_body(scope: HTTPScope, send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            scope["method"] = "HEAD"  # before the server reads it: it must write no body
        elif message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return send_head


def allow_head(message: HTTPResponseStartEvent) -> None:
    """`Allow` (on an answer's start message) lists HEAD wherever it lists GET. Called by the request
    log's one `send` wrapper (app.py), not from a wrapper of its own around every answer."""
    headers = message.get("headers", ())
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"allow":
            methods = {method.strip() for method in value.decode("latin-1").split(",") if method.strip()}
            if "GET" in methods:
                methods.add("HEAD")
            headers = list(headers)
            headers[index] = (name, ", ".join(sorted(methods)).encode("latin-1"))
            message["headers"] = headers
