"""A request the HTTP parser refuses still gets a problem document, from the real server.

A NUL, DEL or vertical tab in a header never reaches the app: uvicorn's parser refuses the request
and used to answer `text/plain` "Invalid HTTP request received.". `tenantry serve` runs uvicorn
with the protocol of http/protocol.py, which answers the same 400 as `application/problem+json`.
Raw sockets, because no HTTP client will send such a header.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tenantry.settings import Settings
from tests.support.processes import free_port, server_process

PROBLEM = "application/problem+json"


def _command(server: str, port: int) -> list[str]:
    if server == "tenantry serve":
        return [sys.executable, "-m", "tenantry", "serve", "--port", str(port), "--workers", "1"]
    # The pure-Python h11 protocol, for a deployment that runs uvicorn itself without httptools.
    return [
        sys.executable, "-m", "uvicorn", "tenantry.app:create_app_from_env", "--factory", "--port", str(port),
        "--http", "tenantry.http.protocol:ProblemH11Protocol", "--log-level", "warning",
    ]  # fmt: skip


@contextmanager
def running(settings: Settings, server: str) -> Iterator[int]:
    port = free_port()
    with server_process(
        _command(server, port), settings, f"http://127.0.0.1:{port}/health/live", {"TENANTRY_DB_POOL_SIZE": "2"}
    ):
        yield port


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


BAD_HEADERS = {
    "nul": b"X-Probe: a\x00b",
    "del": b"X-Probe: a\x7fb",
    "vertical tab": b"X-Probe: a\x0bb",
    "nul in name": b"X-Pro\x00be: a",
}


@pytest.mark.parametrize("server", ["tenantry serve", "uvicorn h11"])
def test_a_request_the_parser_refuses_gets_a_problem_document(migrated_settings: Settings, server: str) -> None:
    with running(migrated_settings, server) as port:
        for name, header in BAD_HEADERS.items():
            request = b"GET /v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\nConnection: close\r\n\r\n"
            status, headers, body = _exchange(port, request)
            assert headers["content-type"] == PROBLEM, (name, headers)
            assert int(headers["content-length"]) == len(body)
            assert headers["request-id"]
            if status == 401 and server == "uvicorn h11" and name == "del":
                continue  # h11 takes DEL for obs-text: the app answers (no token), as problem+json too
            assert status == 400, (name, body)
            problem = json.loads(body)
            assert problem["type"] == "https://tenantry.dev/problems/bad-request"
            assert problem["status"] == 400
            assert problem["title"] == "Bad request"
        # A broken request line too, and a well-formed request still gets the app's answer.
        status, headers, _ = _exchange(port, b"GET /v1/products HTTP/1.1 extra\r\nHost: x\r\n\r\n")
        assert (status, headers["content-type"]) == (400, PROBLEM)
        status, headers, body = _exchange(port, b"GET /v1/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (status, headers["content-type"]) == (401, PROBLEM)
        assert json.loads(body)["type"] == "https://tenantry.dev/problems/unauthenticated"
