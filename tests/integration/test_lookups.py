"""/v1/lookups: per-workspace lookup lists (categories, tags) whose entries report their usage and
cannot be deleted while in use; ETag/If-Match; strict parameters; and the cross-workspace contract."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import (
    Client,
    Tenant,
    all_pages,
    assert_problem,
    create_lookup,
    create_order,
    create_product,
    rows_of,
    snapshot_business,
    target_audit,
)

# --- create and get -------------------------------------------------------------------------------


async def test_create_answers_201_with_location_etag_and_the_stored_fields(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    body = {
        "kind": "product_category",
        "code": "coffee",
        "name": "Coffee",
        "description": "Beans and ground",
        "color": "#a1b2c3",
        "position": 3,
    }
    response = await client.post("/v1/lookups", json=body, headers=tenant_a.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    lookup_id = uuid.UUID(created["id"])
    assert lookup_id.version == 7
    assert response.headers["location"] == f"/v1/lookups/{lookup_id}"
    assert created == {
        **body,
        "color": "#A1B2C3",  # stored upper-case
        "id": str(lookup_id),
        "usage_count": 0,
        "created_at": created["created_at"],
        "updated_at": created["updated_at"],
    }
    fetched = await client.get(response.headers["location"], headers=tenant_a.headers)
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert fetched.headers["etag"] == response.headers["etag"]
    assert await target_audit(admin_engine, tenant_a.id, lookup_id) == ["lookup.created"]


async def test_defaults_are_no_color_position_zero_and_empty_description(client: Client, tenant_a: Tenant) -> None:
    created = await create_lookup(client, tenant_a, kind="order_tag", code="rush", name="Rush")
    assert (created["color"], created["position"], created["description"]) == (None, 0, "")


async def test_code_is_unique_per_workspace_and_kind(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    await create_lookup(client, tenant_a, kind="product_category", code="gift")
    # The same code in the other list of the workspace, and in another workspace, is fine.
    await create_lookup(client, tenant_a, kind="order_tag", code="gift")
    await create_lookup(client, tenant_b, kind="product_category", code="gift")
    taken = await client.post(
        "/v1/lookups", json={"kind": "product_category", "code": "gift", "name": "Again"}, headers=tenant_a.headers
    )
    assert_problem(taken, 409, "conflict")
    # A rename onto a taken code is refused the same way.
    other = await create_lookup(client, tenant_a, kind="product_category", code="other")
    renamed = await client.patch(f"/v1/lookups/{other['id']}", json={"code": "gift"}, headers=tenant_a.headers)
    assert_problem(renamed, 409, "conflict")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "supplier"}, "kind"),
        ({"code": "Has Spaces"}, "code"),
        ({"code": ""}, "code"),
        ({"color": "red"}, "color"),
        ({"color": "#12345"}, "color"),
        ({"position": -1}, "position"),
        ({"position": "1"}, "position"),
        ({"name": "bad\x00name"}, "name"),
        ({"tenant_id": str(uuid.UUID(int=1))}, "tenant_id"),
    ],
)
async def test_invalid_create_is_422_naming_the_field_and_stores_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, change: dict[str, object], field: str
) -> None:
    body = {"kind": "order_tag", "code": "valid", "name": "Valid", **change}
    response = await client.post("/v1/lookups", json=body, headers=tenant_a.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert field in str(problem.get("errors")), problem
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == []


# --- list -----------------------------------------------------------------------------------------


async def _page_through(client: Client, tenant: Tenant, limit: int, **params: object) -> list[dict[str, object]]:
    return [item for page in await all_pages(client, "/v1/lookups", tenant, limit, **params) for item in page["data"]]


async def test_list_filters_by_kind_and_sorts_on_every_allowed_field(client: Client, tenant_a: Tenant) -> None:
    categories = [
        await create_lookup(client, tenant_a, code=code, name=name, position=position)
        for code, name, position in [("b", "Zeta", 2), ("a", "Alpha", 2), ("d", "Mu", 0), ("c", "Beta", 9)]
    ]
    tag = await create_lookup(client, tenant_a, kind="order_tag", code="t", name="Tag")

    every = await _page_through(client, tenant_a, 2)
    assert {item["id"] for item in every} == {c["id"] for c in categories} | {tag["id"]}
    listed = await _page_through(client, tenant_a, 3, kind="product_category")
    assert [c["id"] for c in listed] == [c["id"] for c in sorted(categories, key=lambda c: (c["position"], c["id"]))]
    by = {
        "code": lambda c: c["code"],
        "name": lambda c: c["name"],
        "created_at": lambda c: c["created_at"],
    }
    for field, key in by.items():
        ascending = await _page_through(client, tenant_a, 3, kind="product_category", sort=field)
        assert [c["code"] for c in ascending] == [c["code"] for c in sorted(categories, key=key)], field
        descending = await _page_through(client, tenant_a, 3, kind="product_category", sort=f"-{field}")
        assert [c["code"] for c in descending] == [c["code"] for c in ascending][::-1], field
    # Ties on position are broken by id, in both directions.
    by_position = await _page_through(client, tenant_a, 1, kind="product_category", sort="-position")
    expected = sorted(categories, key=lambda c: (c["position"], c["id"]), reverse=True)
    assert [c["code"] for c in by_position] == [c["code"] for c in expected] == ["c", "a", "b", "d"]


async def test_cursor_is_bound_to_the_kind_filter_and_the_sort(client: Client, tenant_a: Tenant) -> None:
    for _ in range(3):
        await create_lookup(client, tenant_a, kind="order_tag")
    first = (await client.get("/v1/lookups?limit=1&kind=order_tag", headers=tenant_a.headers)).json()
    cursor = first["next_cursor"]
    assert cursor
    for query in (f"kind=product_category&cursor={cursor}", f"kind=order_tag&sort=code&cursor={cursor}"):
        assert_problem(await client.get(f"/v1/lookups?{query}", headers=tenant_a.headers), 400, "invalid-cursor")
    assert (
        await client.get(f"/v1/lookups?kind=order_tag&cursor={cursor}", headers=tenant_a.headers)
    ).status_code == 200


@pytest.mark.parametrize(
    "query", ["categroy=x", "kind=supplier", "sort=color", "limit=0", "limit=101", "tenant_id=x", "position=1"]
)
async def test_list_refuses_unknown_or_invalid_query_parameters(client: Client, tenant_a: Tenant, query: str) -> None:
    response = await client.get(f"/v1/lookups?{query}", headers=tenant_a.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_list_shows_only_own_entries(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await create_lookup(client, tenant_a)
    foreign = await create_lookup(client, tenant_b)
    ids = {item["id"] for item in await _page_through(client, tenant_a, 100)}
    assert own["id"] in ids
    assert foreign["id"] not in ids


# --- usage counts and usage-guarded deletes -------------------------------------------------------


async def test_category_usage_counts_every_product_using_it_soft_deleted_ones_too(
    client: Client, tenant_a: Tenant
) -> None:
    category = await create_lookup(client, tenant_a, kind="product_category")
    other = await create_lookup(client, tenant_a, kind="product_category")
    products = [await create_product(client, tenant_a, category_id=category["id"]) for _ in range(3)]
    await create_product(client, tenant_a, category_id=other["id"])
    await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{products[0]['id']}", headers=tenant_a.headers)).status_code == 204

    got = (await client.get(f"/v1/lookups/{category['id']}", headers=tenant_a.headers)).json()
    assert got["usage_count"] == 3  # the soft-deleted product still holds its category
    listed = {
        item["id"]: item["usage_count"]
        for item in (await client.get("/v1/lookups?kind=product_category", headers=tenant_a.headers)).json()["data"]
    }
    assert listed == {category["id"]: 3, other["id"]: 1}


async def test_tag_usage_counts_the_orders_carrying_it(client: Client, tenant_a: Tenant) -> None:
    tag = await create_lookup(client, tenant_a, kind="order_tag")
    unused = await create_lookup(client, tenant_a, kind="order_tag")
    product = await create_product(client, tenant_a)
    for _ in range(2):
        await create_order(client, tenant_a, product["id"], tag_ids=[tag["id"]])
    await create_order(client, tenant_a, product["id"])
    listed = {
        item["id"]: item["usage_count"]
        for item in (await client.get("/v1/lookups?kind=order_tag", headers=tenant_a.headers)).json()["data"]
    }
    assert listed == {tag["id"]: 2, unused["id"]: 0}


async def test_deleting_a_category_in_use_is_409_with_the_count_then_works_once_unused(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    category = await create_lookup(client, tenant_a, kind="product_category")
    live = await create_product(client, tenant_a, category_id=category["id"])
    deleted = await create_product(client, tenant_a, category_id=category["id"])
    assert (await client.delete(f"/v1/products/{deleted['id']}", headers=tenant_a.headers)).status_code == 204
    before = await snapshot_business(admin_engine, tenant_a.id)

    refused = await client.delete(f"/v1/lookups/{category['id']}", headers=tenant_a.headers)
    problem = assert_problem(refused, 409, "lookup-in-use")
    assert "2 products" in problem["detail"]
    assert problem["errors"] == [{"field": "usage_count", "message": "2"}]
    assert await snapshot_business(admin_engine, tenant_a.id) == before

    # Remove the uses: move the live product out of the category, purge the deleted one.
    moved = await client.patch(f"/v1/products/{live['id']}", json={"category_id": None}, headers=tenant_a.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["category_id"] is None
    refused = await client.delete(f"/v1/lookups/{category['id']}", headers=tenant_a.headers)
    assert "1 product;" in assert_problem(refused, 409, "lookup-in-use")["detail"]
    purged = await client.post(f"/v1/products/{deleted['id']}/purge", headers=tenant_a.headers)
    assert purged.status_code == 204, purged.text

    assert (await client.delete(f"/v1/lookups/{category['id']}", headers=tenant_a.headers)).status_code == 204
    assert (await client.get(f"/v1/lookups/{category['id']}", headers=tenant_a.headers)).status_code == 404
    assert await target_audit(admin_engine, tenant_a.id, category["id"]) == ["lookup.created", "lookup.deleted"]


async def test_deleting_a_tag_in_use_is_409_with_the_count_then_works_once_untagged(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    tag = await create_lookup(client, tenant_a, kind="order_tag")
    keep = await create_lookup(client, tenant_a, kind="order_tag")
    order = await create_order(client, tenant_a, tag_ids=[tag["id"], keep["id"]])
    before = await snapshot_business(admin_engine, tenant_a.id)

    refused = await client.delete(f"/v1/lookups/{tag['id']}", headers=tenant_a.headers)
    problem = assert_problem(refused, 409, "lookup-in-use")
    assert "1 order;" in problem["detail"]
    assert problem["errors"] == [{"field": "usage_count", "message": "1"}]
    assert await snapshot_business(admin_engine, tenant_a.id) == before

    untagged = await client.patch(f"/v1/orders/{order['id']}", json={"tag_ids": [keep["id"]]}, headers=tenant_a.headers)
    assert untagged.status_code == 200, untagged.text
    assert (await client.delete(f"/v1/lookups/{tag['id']}", headers=tenant_a.headers)).status_code == 204
    assert [
        t["id"] for t in (await client.get(f"/v1/orders/{order['id']}", headers=tenant_a.headers)).json()["tags"]
    ] == [keep["id"]]


# --- patch, kind, ETag / If-Match -----------------------------------------------------------------


async def test_patch_changes_only_the_fields_present_and_records_them(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_lookup(client, tenant_a, kind="order_tag", code="vip", name="VIP", color="#000000")
    response = await client.patch(
        f"/v1/lookups/{created['id']}", json={"name": "Very important", "color": None}, headers=tenant_a.headers
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["name"], patched["color"], patched["code"], patched["kind"]) == (
        "Very important",
        None,
        "vip",
        "order_tag",
    )
    assert patched["updated_at"] > created["updated_at"]
    fetched = await client.get(f"/v1/lookups/{created['id']}", headers=tenant_a.headers)
    assert fetched.json() == patched
    assert fetched.headers["etag"] == response.headers["etag"]
    assert await target_audit(admin_engine, tenant_a.id, created["id"]) == ["lookup.created", "lookup.updated"]


async def test_changing_the_kind_is_422_and_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    category = await create_lookup(client, tenant_a, kind="product_category")
    before = await rows_of(admin_engine, "lookups", tenant_a.id)
    response = await client.patch(
        f"/v1/lookups/{category['id']}", json={"kind": "order_tag", "name": "Renamed"}, headers=tenant_a.headers
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [{"field": "kind", "message": "cannot be changed"}]
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == before
    # Repeating the kind it already has is not a change.
    same = await client.patch(
        f"/v1/lookups/{category['id']}", json={"kind": "product_category", "name": "Renamed"}, headers=tenant_a.headers
    )
    assert same.status_code == 200
    assert same.json()["name"] == "Renamed"


async def test_patch_and_delete_with_a_stale_if_match_are_412_and_change_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_lookup(client, tenant_a, kind="order_tag")
    url = f"/v1/lookups/{created['id']}"
    stale = (await client.get(url, headers=tenant_a.headers)).headers["etag"]
    changed = await client.patch(url, json={"name": "Changed"}, headers={**tenant_a.headers, "If-Match": stale})
    assert changed.status_code == 200
    current = changed.headers["etag"]
    assert current != stale
    before = await rows_of(admin_engine, "lookups", tenant_a.id)

    for method, body in (("PATCH", {"name": "Lost update"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers={**tenant_a.headers, "If-Match": stale})
        assert_problem(response, 412, "precondition-failed")
        assert await rows_of(admin_engine, "lookups", tenant_a.id) == before

    deleted = await client.delete(url, headers={**tenant_a.headers, "If-Match": current})
    assert deleted.status_code == 204
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == []


# --- strict parameters ----------------------------------------------------------------------------
# An id that is not a UUID, on every route with one: tests/integration/test_id_routes.py.


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)])
async def test_an_unknown_query_parameter_is_400_on_every_entry_route(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, method: str, body: dict[str, object] | None
) -> None:
    created = await create_lookup(client, tenant_a)
    before = await rows_of(admin_engine, "lookups", tenant_a.id)
    response = await client.request(
        method, f"/v1/lookups/{created['id']}?force=true", json=body, headers=tenant_a.headers
    )
    assert_problem(response, 400, "unknown-query-parameter")
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == before
    post = await client.post(
        "/v1/lookups?dry_run=1", json={"kind": "order_tag", "code": "x", "name": "x"}, headers=tenant_a.headers
    )
    assert_problem(post, 400, "unknown-query-parameter")
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == before


# --- permissions ----------------------------------------------------------------------------------


async def test_lookups_need_their_own_permission(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    created = await create_lookup(client, tenant_a)
    reader, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="reader", permissions={"lookups": "read"}
    )
    headers = {"Authorization": f"Bearer {reader.token}"}
    assert (await client.get(f"/v1/lookups/{created['id']}", headers=headers)).status_code == 200
    before = await rows_of(admin_engine, "lookups", tenant_a.id)
    for method, path, body in (
        ("POST", "/v1/lookups", {"kind": "order_tag", "code": "x", "name": "x"}),
        ("PATCH", f"/v1/lookups/{created['id']}", {"name": "x"}),
        ("DELETE", f"/v1/lookups/{created['id']}", None),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, path
        assert response.headers["x-accepted-permissions"] == "lookups=write"
    assert await rows_of(admin_engine, "lookups", tenant_a.id) == before
    products_only, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="products", permissions={"products": "write"}
    )
    response = await client.get("/v1/lookups", headers={"Authorization": f"Bearer {products_only.token}"})
    assert response.status_code == 403
    assert response.headers["x-accepted-permissions"] == "lookups=read"


# --- cross-workspace ------------------------------------------------------------------------------
# Another workspace's ids on every route that takes one: tests/isolation/test_foreign_ids.py.


async def test_usage_counts_only_the_callers_rows(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    """Same code in both workspaces; only B's products use B's entry, and A's entry stays unused."""
    own = await create_lookup(client, tenant_a, kind="product_category", code="shared")
    theirs = await create_lookup(client, tenant_b, kind="product_category", code="shared")
    await create_product(client, tenant_b, category_id=theirs["id"])
    assert (await client.get(f"/v1/lookups/{own['id']}", headers=tenant_a.headers)).json()["usage_count"] == 0
    assert (await client.get(f"/v1/lookups/{theirs['id']}", headers=tenant_b.headers)).json()["usage_count"] == 1
    assert (await client.delete(f"/v1/lookups/{own['id']}", headers=tenant_a.headers)).status_code == 204
