"""Helpers for the request-limit tests: apps with small limits, and requests held in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import Tenant, make_settings, serve

# Generous defaults, so only the limit a test sets can refuse.
ROOMY = {
    "limit_workspace_requests": 10_000,
    "limit_workspace_window_s": 60,
    "limit_workspace_concurrency": 1_000,
    "limit_token_requests": 10_000,
    "limit_token_window_s": 60,
    "limit_token_concurrency": 1_000,
    "limit_refusal_delay_ms": 0,  # refusals at once (test_request_limits.py tests the delay)
}


def limited_settings(base: Settings, **limits: object) -> Settings:
    return make_settings(base.database_url, **{**ROOMY, **limits})


@asynccontextmanager
async def limited_app(base: Settings, **limits: object) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """An app with these limits, running in this event loop, and a client for it."""
    app = create_app(limited_settings(base, **limits))
    async with serve(app) as client:
        yield app, client


def header_items(value: str) -> dict[str, dict[str, str]]:
    """A RateLimit or RateLimit-Policy field, parsed: {policy name: {parameter: value}}."""
    items: dict[str, dict[str, str]] = {}
    for item in value.split(","):
        name, *params = item.strip().split(";")
        items[name.strip('"')] = dict(param.split("=", 1) for param in params)
    return items


@dataclass
class HeldRequest:
    """A POST /v1/products whose body is held back: it stays in flight until `finish` or `hang_up`."""

    task: asyncio.Task[None]
    gate: asyncio.Event
    outcome: list[str]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    async def finish(self) -> int | None:
        self.outcome.append("body")
        self.gate.set()
        await asyncio.wait_for(self.task, 10)
        return self.status

    async def hang_up(self) -> int | None:
        self.outcome.append("disconnect")
        self.gate.set()
        await asyncio.wait_for(self.task, 10)
        return self.status


async def hold_request(app: Litestar, tenant: Tenant, body: bytes | None = None) -> HeldRequest:
    """Start a create whose body arrives only when released; returns once the app is waiting for it."""
    body = body or (
        b'{"name":"Held","price_cents":100,"currency":"EUR","sku":"H-' + uuid.uuid4().hex[:8].encode() + b'"}'
    )
    gate, waiting, outcome = asyncio.Event(), asyncio.Event(), []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/products",
        "raw_path": b"/v1/products",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {tenant.token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        waiting.set()
        await gate.wait()
        if outcome and outcome[-1] == "disconnect":
            return {"type": "http.disconnect"}
        outcome.append("sent")
        return {"type": "http.request", "body": body, "more_body": False}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await asyncio.wait_for(waiting.wait(), 10)
    return HeldRequest(task=task, gate=gate, outcome=outcome, messages=messages)


async def set_plan(admin_engine: AsyncEngine, workspace_id: uuid.UUID, **limits: int | None) -> None:
    """Write a plan straight into the table, as another process (or SQL by hand) would."""
    columns = ", ".join(limits)
    values = ", ".join(f":{name}" for name in limits)
    updates = ", ".join(f"{name} = excluded.{name}" for name in limits)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                f"INSERT INTO public.workspace_plans (workspace_id, {columns}) VALUES (:w, {values}) "
                f"ON CONFLICT (workspace_id) DO UPDATE SET {updates}"
            ),
            {"w": workspace_id, **limits},
        )
