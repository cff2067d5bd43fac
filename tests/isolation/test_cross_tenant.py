"""docs/security.md, contract rules 4-6: A can neither see nor change B's rows; B's rows are unchanged byte for byte.

B's ids sent to every route that takes one: tests/isolation/test_foreign_ids.py.
"""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.core.sqlstate import sqlstate_of
from tenantry.settings import Settings
from tests.support import Tenant, as_tenant, create_product, snapshot_rows

Client = AsyncTestClient[Litestar]


async def test_list_shows_only_own_products(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await create_product(client, tenant_a)
    foreign = await create_product(client, tenant_b)
    listed = (await client.get("/v1/products?limit=100&include_deleted=true", headers=tenant_a.headers)).json()
    ids = {p["id"] for p in listed["data"]}
    assert own["id"] in ids
    assert foreign["id"] not in ids


async def test_body_naming_a_tenant_is_rejected_and_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await create_product(client, tenant_b)
    before_b = await snapshot_rows(admin_engine, "products", tenant_b.id)
    before_a = await snapshot_rows(admin_engine, "products", tenant_a.id)
    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "T-1", "tenant_id": str(tenant_b.id)}
    response = await client.post("/v1/products", json=body, headers=tenant_a.headers)
    assert response.status_code == 422
    assert "tenant_id" in response.text
    product_a = await create_product(client, tenant_a)
    patched = await client.patch(
        f"/v1/products/{product_a['id']}", json={"tenant_id": str(tenant_b.id)}, headers=tenant_a.headers
    )
    assert patched.status_code == 422
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before_b
    assert len(await snapshot_rows(admin_engine, "products", tenant_a.id)) == len(before_a) + 1


async def test_tenant_headers_and_query_cannot_select_another_workspace(
    client: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    foreign = await create_product(client, tenant_b)
    headers = {**tenant_a.headers, "X-Tenant-Id": str(tenant_b.id), "X-Workspace-Id": str(tenant_b.id)}
    listed = await client.get("/v1/products", headers=headers)
    assert listed.status_code == 200
    assert foreign["id"] not in {p["id"] for p in listed.json()["data"]}
    # A tenant-selecting query parameter is no parameter of any route: refused, never honoured.
    response = await client.get(f"/v1/products?tenant_id={tenant_b.id}&workspace_id={tenant_b.id}", headers=headers)
    assert response.status_code == 400
    assert foreign["id"] not in response.text


async def test_sql_insert_carrying_another_tenant_is_refused(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = await snapshot_rows(admin_engine, "products", tenant_b.id)
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(
                text(
                    "INSERT INTO public.products (tenant_id, id, name, price_cents, currency, sku) "
                    "VALUES (:t, :id, 'planted', 1, 'EUR', 'PLANT')"
                ),
                {"t": tenant_b.id, "id": uuid.uuid4()},
            )
        # The policy's WITH CHECK refuses it (42501); on Citus the distribution column cannot be
        # updated at all, and the statement is refused before it reaches a shard (0A000).
        assert sqlstate_of(raised.value) in ("42501", "0A000")
        if sqlstate_of(raised.value) == "0A000":
            assert "partition" in str(raised.value.orig) or "distribution" in str(raised.value.orig)
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before


async def test_sql_update_and_select_of_another_tenant_touch_nothing(
    client: Client,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    foreign = await create_product(client, tenant_b)
    before = await snapshot_rows(admin_engine, "products", tenant_b.id)
    async with app_engine.begin() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        seen = (
            await connection.execute(text("SELECT count(*) FROM public.products WHERE id = :id"), {"id": foreign["id"]})
        ).scalar_one()
        updated = await connection.execute(
            text("UPDATE public.products SET name = 'stolen' WHERE id = :id"), {"id": foreign["id"]}
        )
    assert seen == 0
    assert updated.rowcount == 0
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before


async def test_moving_own_row_into_another_tenant_is_refused(
    client: Client,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    own = await create_product(client, tenant_a)
    before = await snapshot_rows(admin_engine, "products", tenant_b.id)
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(
                text("UPDATE public.products SET tenant_id = :b WHERE id = :id"), {"b": tenant_b.id, "id": own["id"]}
            )
        # The policy's WITH CHECK refuses it (42501); on Citus the distribution column cannot be
        # updated at all, and the statement is refused before it reaches a shard (0A000).
        assert sqlstate_of(raised.value) in ("42501", "0A000")
        if sqlstate_of(raised.value) == "0A000":
            assert "partition" in str(raised.value.orig) or "distribution" in str(raised.value.orig)
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before


async def test_foreign_key_cannot_point_at_another_tenants_row(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """A token row of A naming B's membership: the composite key (A, B's id) does not exist."""
    before = await snapshot_rows(admin_engine, "memberships", tenant_b.id)
    before_tokens = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id)
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(
                text(
                    "INSERT INTO public.personal_access_tokens (tenant_id, id, membership_id, name, token_digest, "
                    "display_prefix, last_four, permissions, expires_at) VALUES (:a, :id, :m, 'x', :d, 'tnt_', "
                    "'abcd', '{}', now() + interval '1 day')"
                ),
                {"a": tenant_a.id, "id": uuid.uuid4(), "m": tenant_b.workspace.owner_membership_id, "d": b"\x01" * 32},
            )
        assert sqlstate_of(raised.value) == "23503"
    assert await snapshot_rows(admin_engine, "memberships", tenant_b.id) == before
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id) == before_tokens
