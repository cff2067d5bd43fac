"""Lookups and orders made through the API, problem answers, and snapshots of the business tables."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import Client, create_product
from tests.support.rows import snapshot_rows
from tests.support.tenants import Tenant

PROBLEM = "application/problem+json"
# Nothing internal may cross the problem layer (docs/05-api-guide.md, Errors).
INTERNALS = ("uq_", "pk_", "ck_", "fk_", "23503", "23505", "constraint", "SELECT", "INSERT", "lookups_", "orders_")
# Every table this domain writes, for "B's rows are unchanged" (the audit log included).
BUSINESS_TABLES = ("lookups", "products", "orders", "order_status_history", "order_tags", "audit_events")


@dataclass
class Caller:
    """Stands in for a fixture Tenant where only `headers` is used (a workspace made via the admin API)."""

    headers: dict[str, str]


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert str(body["type"]).endswith("/" + slug), body
    for needle in INTERNALS:
        assert needle not in response.text, needle
    return dict(body)


async def rows_of(admin_engine: AsyncEngine, table: str, tenant_id: uuid.UUID) -> list[str]:
    """One tenant's rows of `table` as exact text; order_tags has no `id`, so it sorts by its text."""
    if table != "order_tags":
        return await snapshot_rows(admin_engine, table, tenant_id)
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT t::text FROM public.order_tags AS t WHERE tenant_id = :t ORDER BY 1"), {"t": tenant_id}
        )
        return [r[0] for r in rows]


async def snapshot_business(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    return {table: await rows_of(admin_engine, table, tenant_id) for table in BUSINESS_TABLES}


async def create_lookup(
    client: Client, tenant: Tenant, kind: str = "product_category", **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "code": f"c-{uuid.uuid4().hex[:10]}", "name": "Entry"}
    body.update(fields)
    response = await client.post("/v1/lookups", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_order(client: Client, tenant: Tenant, product_id: Any = None, **fields: Any) -> dict[str, Any]:
    if product_id is None:
        product_id = (await create_product(client, tenant))["id"]
    body: dict[str, Any] = {
        "product_id": str(product_id),
        "customer_email": "ada@example.com",
        "customer_name": "Ada Lovelace",
        "quantity": 1,
    }
    body.update(fields)
    response = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def target_audit(admin_engine: AsyncEngine, tenant_id: uuid.UUID, target_id: Any) -> list[str]:
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT action FROM public.audit_events WHERE tenant_id = :t AND target_id = :id ORDER BY id"),
            {"t": tenant_id, "id": str(target_id)},
        )
        return [r[0] for r in rows]
