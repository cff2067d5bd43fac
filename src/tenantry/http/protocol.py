"""uvicorn's HTTP protocols, made to refuse a request they cannot parse with problem+json.

A NUL, DEL or vertical tab in a header (or any request line or header the parser rejects) never
reaches the app: uvicorn answers it itself, with `text/plain` "Invalid HTTP request received.".
Every error of this API is a problem document (docs/05-api-guide.md, Errors), so these subclasses
write that same 400 as one, with a Request-Id like every other answer, and close the connection
as uvicorn does (the rest of the stream cannot be trusted). `tenantry serve` and `tenantry dev`
name them as uvicorn's `http` protocol.
"""

from __future__ import annotations

import uuid

import h11
import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tenantry.http.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Problem

# uvicorn's `http` setting for `tenantry serve` (an import string: each worker imports it).
HTTPTOOLS_PROTOCOL = "tenantry.http.protocol:ProblemHttpToolsProtocol"
MALFORMED_DETAIL = "The request is not valid HTTP: a malformed request line or header."


def malformed_request_answer() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of the 400 for an unparseable request."""
    body = msgspec.json.encode(
        Problem(type=PROBLEM_BASE + "bad-request", title="Bad request", status=400, detail=MALFORMED_DETAIL)
    )
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", uuid.uuid4().hex.encode()),
        (b"connection", b"close"),
    ]
    return headers, body


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what `tenantry serve` runs), with a problem+json 400."""

    def send_400_response(self, msg: str) -> None:
        headers, body = malformed_request_answer()
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in [*self.server_state.default_headers, *headers]:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"\r\n", body])
        self.transport.write(b"".join(content))
        self.transport.close()


class ProblemH11Protocol(H11Protocol):
    """uvicorn's pure-Python h11 protocol, with the same problem+json 400."""

    def send_400_response(self, msg: str) -> None:
        headers, body = malformed_request_answer()
        event = h11.Response(
            status_code=400, headers=[*self.server_state.default_headers, *headers], reason=b"Bad Request"
        )
        for output in (self.conn.send(event), self.conn.send(h11.Data(data=body)), self.conn.send(h11.EndOfMessage())):
            if output:
                self.transport.write(output)
        self.transport.close()
