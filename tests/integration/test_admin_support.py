"""Helpers shared by the test_admin_* modules (this module holds no tests)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.workspaces.tables import tenant_tables

Client = AsyncTestClient[Litestar]
WORKSPACES = "/admin/v1/workspaces"


def unique_slug(label: str = "adm") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def workspace_body(**overrides: Any) -> dict[str, Any]:
    slug = overrides.pop("slug", None) or unique_slug()
    body: dict[str, Any] = {"slug": slug, "name": f"Workspace {slug}", "owner_email": f"owner-{slug}@example.com"}
    body.update(overrides)
    return body


async def create_workspace(client: Client, admin_headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await client.post(WORKSPACES, json=workspace_body(**overrides), headers=admin_headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_products(client: Client, token: str, count: int) -> list[dict[str, Any]]:
    products = []
    for i in range(count):
        body = {"name": f"P{i}", "price_cents": 100 + i, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
        response = await client.post("/v1/products", json=body, headers=bearer(token))
        assert response.status_code == 201, response.text
        products.append(response.json())
    return products


async def count_rows(admin_engine: AsyncEngine, workspace_id: uuid.UUID | str) -> dict[str, int]:
    """Rows per tenant table of one workspace, counted past RLS as the privileged account."""
    counts = {}
    async with admin_engine.connect() as connection:
        for table in tenant_tables():
            result = await connection.execute(
                text(f"SELECT count(*) FROM public.{table.name} WHERE tenant_id = :t"), {"t": workspace_id}
            )
            counts[table.name] = int(result.scalar_one())
    return counts


async def snapshot_all(admin_engine: AsyncEngine, workspace_id: uuid.UUID) -> dict[str, list[str]]:
    """Every tenant row of one workspace in every tenant table, as exact text."""
    from tests.conftest import snapshot_rows

    return {table.name: await snapshot_rows(admin_engine, table.name, workspace_id) for table in tenant_tables()}


async def workspace_row(admin_engine: AsyncEngine, workspace_id: uuid.UUID | str) -> str:
    async with admin_engine.connect() as connection:
        result = await connection.execute(
            text("SELECT w::text FROM public.workspaces AS w WHERE id = :id"), {"id": workspace_id}
        )
        return str(result.scalar_one())


async def platform_events(admin_engine: AsyncEngine, workspace_id: uuid.UUID | str) -> list[str]:
    async with admin_engine.connect() as connection:
        result = await connection.execute(
            text("SELECT action FROM public.platform_audit_events WHERE workspace_id = :w ORDER BY id"),
            {"w": workspace_id},
        )
        return [r[0] for r in result]


async def tenant_events(admin_engine: AsyncEngine, workspace_id: uuid.UUID | str) -> list[tuple[str, str]]:
    async with admin_engine.connect() as connection:
        result = await connection.execute(
            text("SELECT action, actor_type FROM public.audit_events WHERE tenant_id = :w ORDER BY id"),
            {"w": workspace_id},
        )
        return [(r[0], r[1]) for r in result]
