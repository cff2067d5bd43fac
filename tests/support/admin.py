"""Platform admin tokens, and workspaces made and inspected through the admin API."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import JSON, Table, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.admin.accounts import AdminTokenService, NewAdminToken
from tenantry.settings import Settings
from tenantry.tenancy.session import platform_session_factory
from tenantry.workspaces.tables import exportable_columns, tenant_tables
from tests.support.http import Client, bearer
from tests.support.rows import snapshot_rows

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


async def issue_admin_token(engine: AsyncEngine, settings: Settings, name: str) -> tuple[NewAdminToken, uuid.UUID]:
    """A platform admin token, made by the same service as `tenantry admin token create`."""
    async with platform_session_factory(engine, settings)() as session:
        new = await AdminTokenService(session, settings).issue(name)
    return new, new.id


async def revoke_admin_token(engine: AsyncEngine, settings: Settings, token_id: uuid.UUID) -> bool:
    async with platform_session_factory(engine, settings)() as session:
        await AdminTokenService(session, settings).revoke(token_id)
    return True


def read_back(table: Table, line: dict[str, Any]) -> dict[str, Any]:
    """A parsed JSON line turned back into the column's Python values (uuid, datetime, bytes...)."""
    values = {}
    for column in exportable_columns(table):
        value = line[column.name]
        if value is not None and not isinstance(column.type, JSON):
            value = msgspec.convert(value, column.type.python_type)
        values[column.name] = value
    return values


async def ground_truth(admin_engine: AsyncEngine, table: Table, workspace_id: uuid.UUID) -> list[dict[str, Any]]:
    """The table's rows of the workspace, read past RLS as the privileged account."""
    query = (
        select(*exportable_columns(table)).where(table.c.tenant_id == workspace_id).order_by(*table.primary_key.columns)
    )
    async with admin_engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(query)]
