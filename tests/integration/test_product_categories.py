"""Products gain a category (a lookup of kind product_category), a fast name search, and a purge of
soft-deleted products that no order refers to; with the cross-workspace contract for each."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.catalog.models import Product
from tenantry.catalog.repository import ProductRepository
from tenantry.catalog.service import SORTABLE
from tenantry.settings import Settings
from tenantry.tenancy.pagination import Ordering
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import (
    Client,
    Tenant,
    answer,
    assert_problem,
    create_lookup,
    create_order,
    create_product,
    plan_as_tenant,
    rows_of,
    snapshot_business,
    target_audit,
)

# --- category ---------------------------------------------------------------------------------------


async def test_a_product_takes_a_category_of_its_workspace(client: Client, tenant_a: Tenant) -> None:
    category = await create_lookup(client, tenant_a, kind="product_category")
    product = await create_product(client, tenant_a, category_id=category["id"])
    assert product["category_id"] == category["id"]
    fetched = await client.get(f"/v1/products/{product['id']}", headers=tenant_a.headers)
    assert fetched.json()["category_id"] == category["id"]
    assert (await create_product(client, tenant_a))["category_id"] is None


async def test_an_order_tag_is_not_a_category(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    tag = await create_lookup(client, tenant_a, kind="order_tag")
    product = await create_product(client, tenant_a)
    before = await rows_of(admin_engine, "products", tenant_a.id)
    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "TAGGED", "category_id": tag["id"]}
    for response in (
        await client.post("/v1/products", json=body, headers=tenant_a.headers),
        await client.patch(f"/v1/products/{product['id']}", json={"category_id": tag["id"]}, headers=tenant_a.headers),
    ):
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"] == [{"field": "category_id", "message": "is not a category"}]
    assert await rows_of(admin_engine, "products", tenant_a.id) == before


async def test_patch_moves_a_product_between_categories_and_out_of_any(client: Client, tenant_a: Tenant) -> None:
    first = await create_lookup(client, tenant_a)
    second = await create_lookup(client, tenant_a)
    product = await create_product(client, tenant_a, category_id=first["id"])
    url = f"/v1/products/{product['id']}"
    moved = await client.patch(url, json={"category_id": second["id"]}, headers=tenant_a.headers)
    assert moved.json()["category_id"] == second["id"]
    # A PATCH without the field leaves the category alone; null clears it.
    assert (await client.patch(url, json={"name": "Renamed"}, headers=tenant_a.headers)).json()[
        "category_id"
    ] == second["id"]
    assert (await client.patch(url, json={"category_id": None}, headers=tenant_a.headers)).json()["category_id"] is None
    usage = [
        (await client.get(f"/v1/lookups/{c['id']}", headers=tenant_a.headers)).json()["usage_count"]
        for c in (first, second)
    ]
    assert usage == [0, 0]


async def test_another_workspaces_category_answers_exactly_like_an_unknown_one(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    foreign = await create_lookup(client, tenant_b, kind="product_category")
    product = await create_product(client, tenant_a)
    before_a = await snapshot_business(admin_engine, tenant_a.id)
    before_b = await snapshot_business(admin_engine, tenant_b.id)

    def body(category_id: object) -> dict[str, object]:
        return {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "X-1", "category_id": str(category_id)}

    for method, path, make in (
        ("POST", "/v1/products", body),
        ("PATCH", f"/v1/products/{product['id']}", lambda c: {"category_id": str(c)}),
    ):
        stolen = await answer(client, tenant_a, method, path, json=make(foreign["id"]))
        random = await answer(client, tenant_a, method, path, json=make(uuid.uuid4()))
        assert stolen[0] == 422
        assert stolen == random
        assert b'"unknown category"' in stolen[1]
    assert await snapshot_business(admin_engine, tenant_a.id) == before_a
    assert await snapshot_business(admin_engine, tenant_b.id) == before_b


async def test_list_filters_by_category(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    category = await create_lookup(client, tenant_a)
    inside = [await create_product(client, tenant_a, category_id=category["id"]) for _ in range(3)]
    await create_product(client, tenant_a)
    seen, cursor = [], None
    for _ in range(5):
        params = {"category_id": category["id"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/products", params=params, headers=tenant_a.headers)).json()
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [p["id"] for p in inside]
    # The cursor belongs to that filter.
    first = (await client.get(f"/v1/products?category_id={category['id']}&limit=1", headers=tenant_a.headers)).json()
    response = await client.get(f"/v1/products?limit=1&cursor={first['next_cursor']}", headers=tenant_a.headers)
    assert_problem(response, 400, "invalid-cursor")
    # Another workspace's category filters to nothing, exactly like a random id.
    foreign = await create_lookup(client, tenant_b)
    await create_product(client, tenant_b, category_id=foreign["id"])
    stolen = await answer(client, tenant_a, "GET", f"/v1/products?category_id={foreign['id']}")
    random = await answer(client, tenant_a, "GET", f"/v1/products?category_id={uuid.uuid4()}")
    assert stolen == random == (200, b'{"data":[],"has_more":false,"next_cursor":null}')


@pytest.mark.parametrize("query", ["category_id=not-a-uuid", "category=x", "categroy_id=" + str(uuid.UUID(int=7))])
async def test_a_bad_category_filter_is_400(client: Client, tenant_a: Tenant, query: str) -> None:
    response = await client.get(f"/v1/products?{query}", headers=tenant_a.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


# --- name search ----------------------------------------------------------------------------------


async def test_name_prefix_search_has_an_index_led_by_tenant_id(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as connection:
        definition = (
            await connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_products_tenant_id_name_lower'")
            )
        ).scalar_one()
    assert "(tenant_id, name_lower text_pattern_ops)" in definition


async def insert_bulk_products(admin_engine: AsyncEngine, tenant: Tenant, count: int = 5000) -> None:
    """A catalog large enough that reading it all would show in a plan, with fresh statistics."""
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO public.products (tenant_id, id, name, price_cents, currency, sku) "
                "SELECT :t, gen_random_uuid(), 'Product ' || n, n, 'EUR', 'BULK-' || n "
                "FROM generate_series(1, :count) AS n"
            ),
            {"t": tenant.id, "count": count},
        )
        await connection.execute(text("ANALYZE public.products"))


async def test_the_name_prefix_query_uses_that_index_under_rls(
    admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """The repository's own query, planned as the tenant role with its policy applied, on a catalog
    large enough that reading it all would cost: the prefix becomes an index range."""
    await insert_bulk_products(admin_engine, tenant_a)
    query = ProductRepository(None, tenant_a.id).filtered(  # type: ignore[arg-type]
        include_deleted=False, name_prefix="Espresso"
    )
    plan = await plan_as_tenant(app_engine, settings, tenant_a.id, query)
    assert "ix_products_tenant_id_name_lower" in plan, plan
    assert "~>=~ 'espresso'" in plan, plan  # the prefix is an index range, not a filter over every row
    assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "name", "-name", "price_cents", "-price_cents"])
async def test_every_list_order_reads_one_page_from_an_index_instead_of_sorting_the_workspace(
    admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, sort: str
) -> None:
    await insert_bulk_products(admin_engine, tenant_a)
    ordering = Ordering.parse(sort, SORTABLE, Product.id)
    query = (
        ProductRepository(None, tenant_a.id)  # type: ignore[arg-type]
        .filtered(include_deleted=False, name_prefix=None)
        .order_by(*ordering.clauses())
        .limit(21)
    )
    plan = await plan_as_tenant(app_engine, settings, tenant_a.id, query)
    column = sort.lstrip("-")
    assert f"ix_products_tenant_id_{column}_id_live" in plan, plan
    assert "Sort" not in plan, plan


async def test_name_prefix_matches_case_insensitively_and_treats_wildcards_literally(
    client: Client, tenant_a: Tenant
) -> None:
    names = ["Espresso", "espresso beans", "Esp_50% off", "Espx50 off", "Latte"]
    for name in names:
        await create_product(client, tenant_a, name=name)

    async def search(prefix: str) -> list[str]:
        page = await client.get(
            "/v1/products", params={"name_prefix": prefix, "sort": "name"}, headers=tenant_a.headers
        )
        return sorted(p["name"] for p in page.json()["data"])

    assert await search("ESPRESSO") == ["Espresso", "espresso beans"]
    assert await search("esp_") == ["Esp_50% off"]
    assert await search("Esp_50%") == ["Esp_50% off"]


# --- purge ----------------------------------------------------------------------------------------


async def test_purge_erases_a_soft_deleted_product_and_is_audited(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    product = await create_product(client, tenant_a)
    url = f"/v1/products/{product['id']}"
    assert (await client.delete(url, headers=tenant_a.headers)).status_code == 204
    response = await client.post(f"{url}/purge", headers=tenant_a.headers)
    assert response.status_code == 204, response.text
    assert await rows_of(admin_engine, "products", tenant_a.id) == []
    assert (await client.get(f"{url}?include_deleted=true", headers=tenant_a.headers)).status_code == 404
    assert (await client.post(f"{url}/restore", headers=tenant_a.headers)).status_code == 404
    assert await target_audit(admin_engine, tenant_a.id, product["id"]) == [
        "product.created",
        "product.deleted",
        "product.purged",
    ]
    # Purged means gone: a second purge is a 404 like any unknown id.
    assert_problem(await client.post(f"{url}/purge", headers=tenant_a.headers), 404, "not-found")


async def test_a_live_product_cannot_be_purged(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a)
    before = await snapshot_business(admin_engine, tenant_a.id)
    problem = assert_problem(
        await client.post(f"/v1/products/{product['id']}/purge", headers=tenant_a.headers), 409, "conflict"
    )
    assert "delete it first" in problem["detail"]
    assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_a_product_with_orders_can_be_soft_deleted_but_not_purged(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    product = await create_product(client, tenant_a, price_cents=500)
    orders = [await create_order(client, tenant_a, product["id"], quantity=q) for q in (1, 2)]
    url = f"/v1/products/{product['id']}"
    assert (await client.delete(url, headers=tenant_a.headers)).status_code == 204
    before = await snapshot_business(admin_engine, tenant_a.id)

    problem = assert_problem(await client.post(f"{url}/purge", headers=tenant_a.headers), 409, "product-has-orders")
    assert problem["detail"].startswith("2 orders refer to this product")
    assert problem["errors"] == [{"field": "order_count", "message": "2"}]
    assert await snapshot_business(admin_engine, tenant_a.id) == before
    # The orders stay readable, amounts intact, while their product is soft-deleted.
    for order in orders:
        fetched = (await client.get(f"/v1/orders/{order['id']}", headers=tenant_a.headers)).json()
        assert fetched == order


async def test_purge_is_refused_without_products_write(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    product = await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers)).status_code == 204
    reader, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="reader", permissions={"products": "read"}
    )
    before = await rows_of(admin_engine, "products", tenant_a.id)
    response = await client.post(
        f"/v1/products/{product['id']}/purge", headers={"Authorization": f"Bearer {reader.token}"}
    )
    assert response.status_code == 403
    assert response.headers["x-accepted-permissions"] == "products=write"
    assert await rows_of(admin_engine, "products", tenant_a.id) == before


async def test_purge_refuses_a_non_uuid_id_and_unknown_query_parameters(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    product = await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers)).status_code == 204
    before = await rows_of(admin_engine, "products", tenant_a.id)
    bad_id = assert_problem(await client.post("/v1/products/123/purge", headers=tenant_a.headers), 400, "bad-request")
    assert "product_id" in str(bad_id["errors"])
    assert_problem(
        await client.post(f"/v1/products/{product['id']}/purge?force=1", headers=tenant_a.headers),
        400,
        "unknown-query-parameter",
    )
    assert await rows_of(admin_engine, "products", tenant_a.id) == before
