"""The /v1/products API end to end: create, read, list with keyset cursors, PATCH, soft delete,
restore, and the permission guard (token scopes narrowed by the member's role)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import Tenant, all_pages, create_product, snapshot_rows

Client = AsyncTestClient[Litestar]

PROBLEM = "application/problem+json"
# Nothing internal may cross the problem layer (docs/05-api-guide.md, Errors).
INTERNALS = ("uq_", "pk_", "ck_", "fk_", "products_", "23505", "duplicate key", "constraint", "SELECT", "INSERT")


def _assert_problem(response, status: int, slug: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert str(body["type"]).endswith("/" + slug), body
    for needle in INTERNALS:
        assert needle not in response.text, needle
    return dict(body)


async def _row(admin_engine: AsyncEngine, product_id: object) -> dict[str, object] | None:
    """One product row as stored, read past RLS."""
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(text("SELECT * FROM public.products WHERE id = :id"), {"id": product_id})
        ).first()
    return dict(row._mapping) if row is not None else None


async def _all_pages(client: Client, tenant: Tenant, limit: int, **params: object) -> list[dict[str, object]]:
    return await all_pages(client, "/v1/products", tenant, limit, **params)


# --- create and get ---------------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_stored_fields(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    body = {"name": "Espresso", "price_cents": 2490, "currency": "EUR", "sku": "ESP-1KG", "description": "1 kg"}
    response = await client.post("/v1/products", json=body, headers=tenant_a.headers)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    created = response.json()
    product_id = uuid.UUID(created["id"])
    assert product_id.version == 7
    assert response.headers["location"] == f"/v1/products/{product_id}"
    assert {k: created[k] for k in body} == body
    assert created["deleted_at"] is None
    assert created["created_at"] == created["updated_at"]
    row = await _row(admin_engine, product_id)
    assert row is not None
    assert row["tenant_id"] == tenant_a.id  # the workspace comes from the token
    assert (row["name"], row["price_cents"], row["currency"], row["sku"]) == ("Espresso", 2490, "EUR", "ESP-1KG")


async def test_description_defaults_to_empty(client: Client, tenant_a: Tenant) -> None:
    created = await create_product(client, tenant_a)
    assert created["description"] == ""


async def test_get_returns_what_create_returned(client: Client, tenant_a: Tenant) -> None:
    created = await create_product(client, tenant_a, name="Cup", description="ceramic")
    response = await client.get(f"/v1/products/{created['id']}", headers=tenant_a.headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_the_etag_is_the_hash_of_the_body_sent(client: Client, tenant_a: Tenant) -> None:
    # The body is encoded once, for the tag and for the wire (http/etag.py): a PATCH with the tag
    # read here applies, one with a tag of other bytes is refused.
    created = await create_product(client, tenant_a, name="Mug")
    response = await client.get(f"/v1/products/{created['id']}", headers=tenant_a.headers)
    assert response.headers["content-type"] == "application/json"
    digest = base64.urlsafe_b64encode(hashlib.sha256(response.content).digest()[:18]).decode()
    assert response.headers["etag"] == f'"{digest}"'
    assert response.json() == created
    stale = base64.urlsafe_b64encode(hashlib.sha256(response.content + b" ").digest()[:18]).decode()
    refused = await client.patch(
        f"/v1/products/{created['id']}", json={"name": "Cup"}, headers={**tenant_a.headers, "If-Match": f'"{stale}"'}
    )
    assert refused.status_code == 412
    applied = await client.patch(
        f"/v1/products/{created['id']}",
        json={"name": "Cup"},
        headers={**tenant_a.headers, "If-Match": response.headers["etag"]},
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["name"] == "Cup"


async def test_get_of_unknown_id_answers_404_problem(client: Client, tenant_a: Tenant) -> None:
    response = await client.get(f"/v1/products/{uuid.uuid4()}", headers=tenant_a.headers)
    _assert_problem(response, 404, "not-found")


# --- list and keyset pagination ---------------------------------------------------------------


async def test_list_is_ordered_oldest_first(client: Client, tenant_a: Tenant) -> None:
    created = [await create_product(client, tenant_a, name=f"item {n}") for n in range(5)]
    response = await client.get("/v1/products", headers=tenant_a.headers)
    assert response.status_code == 200
    page = response.json()
    assert [p["id"] for p in page["data"]] == [p["id"] for p in created]
    assert page["has_more"] is False
    assert page["next_cursor"] is None


@pytest.mark.parametrize(("limit", "sizes"), [(2, [2, 2, 1]), (1, [1, 1, 1, 1, 1]), (5, [5]), (100, [5])])
async def test_keyset_pages_cover_every_product_once(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, limit: int, sizes: list[int]
) -> None:
    await create_product(client, tenant_b)  # another workspace's rows must never appear
    created = [await create_product(client, tenant_a, name=f"item {n}") for n in range(5)]

    pages = await _all_pages(client, tenant_a, limit)

    assert [len(p["data"]) for p in pages] == sizes
    assert [p["has_more"] for p in pages] == [True] * (len(sizes) - 1) + [False]
    assert all(p["next_cursor"] for p in pages[:-1])
    assert pages[-1]["next_cursor"] is None
    seen = [item["id"] for p in pages for item in p["data"]]
    assert seen == [p["id"] for p in created]  # no duplicates, no gaps, creation order
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "name", "-name", "price_cents", "-price_cents"])
async def test_pages_in_every_order_with_a_filter_cover_the_matching_products_once(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, sort: str
) -> None:
    """Each page's statement is built once per shape (order, filters, cursor or not) with its values as
    parameters: the sort value and id of the cursor must continue the list exactly, in every order."""
    await create_product(client, tenant_b, name="Tea b")  # another workspace's rows must never appear
    prices = [300, 100, 200, 100, 500]  # ties on the sort column are broken by id
    matching = [await create_product(client, tenant_a, name=f"Tea {n}", price_cents=p) for n, p in enumerate(prices)]
    await create_product(client, tenant_a, name="Coffee")  # outside the prefix
    column, descending = sort.lstrip("-"), sort.startswith("-")

    pages = await _all_pages(client, tenant_a, 2, sort=sort, name_prefix="tea")

    seen = [item["id"] for page in pages for item in page["data"]]
    assert sorted(seen) == sorted(p["id"] for p in matching)  # each once, none of the others
    keys = [(item[column], item["id"]) for page in pages for item in page["data"]]
    assert keys == sorted(keys, reverse=descending)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"include_deleted": "true"},
        {"name_prefix": "0", "category_id": str(uuid.UUID(int=1))},
        {"include_deleted": "true", "name_prefix": "w", "sort": "-price_cents"},
    ],
)
async def test_an_empty_cursor_starts_the_list(client: Client, tenant_a: Tenant, params: dict[str, str]) -> None:
    """Found by the fuzzer: `cursor=` is no cursor, whatever the filters (it once picked the page
    statement that continues past a cursor, without the cursor's values)."""
    await create_product(client, tenant_a)
    without = await client.get("/v1/products", params=params, headers=tenant_a.headers)
    empty = await client.get("/v1/products", params={**params, "cursor": ""}, headers=tenant_a.headers)
    assert without.status_code == 200, without.text
    assert empty.status_code == 200, empty.text
    assert empty.json() == without.json()


async def test_last_page_that_is_exactly_full_has_no_more(client: Client, tenant_a: Tenant) -> None:
    for n in range(4):
        await create_product(client, tenant_a, name=f"item {n}")
    pages = await _all_pages(client, tenant_a, 2)
    assert [len(p["data"]) for p in pages] == [2, 2]
    assert pages[-1]["has_more"] is False


def _flip(cursor: str, index: int) -> str:
    replacement = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + replacement + cursor[index + 1 :]


@pytest.mark.parametrize("part", ["payload", "mac"])
async def test_tampered_cursor_answers_400(client: Client, tenant_a: Tenant, part: str) -> None:
    for n in range(3):
        await create_product(client, tenant_a, name=f"item {n}")
    first = (await client.get("/v1/products?limit=1", headers=tenant_a.headers)).json()
    cursor = first["next_cursor"]
    payload, mac = cursor.split(".")
    # Flip a character in the middle of a part: every bit of it is significant there.
    index = len(payload) // 2 if part == "payload" else len(payload) + 1 + len(mac) // 2
    tampered = _flip(cursor, index)
    assert tampered != cursor

    response = await client.get("/v1/products", params={"limit": 1, "cursor": tampered}, headers=tenant_a.headers)

    _assert_problem(response, 400, "invalid-cursor")


@pytest.mark.parametrize("cursor", ["garbage", "a.b", "....", "eyJhZnRlciI6MX0.AAAA", "é.é"])
async def test_junk_cursor_answers_400(client: Client, tenant_a: Tenant, cursor: str) -> None:
    response = await client.get("/v1/products", params={"cursor": cursor}, headers=tenant_a.headers)
    _assert_problem(response, 400, "invalid-cursor")


async def test_cursor_from_another_workspace_answers_400(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for n in range(3):
        await create_product(client, tenant_b, name=f"b item {n}")
    await create_product(client, tenant_a)
    cursor_b = (await client.get("/v1/products?limit=1", headers=tenant_b.headers)).json()["next_cursor"]
    assert cursor_b
    before_b = await snapshot_rows(admin_engine, "products", tenant_b.id)

    response = await client.get("/v1/products", params={"limit": 1, "cursor": cursor_b}, headers=tenant_a.headers)

    _assert_problem(response, 400, "invalid-cursor")
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before_b


@pytest.mark.parametrize(("made_with", "used_with"), [("false", "true"), ("true", "false")])
async def test_cursor_is_bound_to_the_include_deleted_filter(
    client: Client, tenant_a: Tenant, made_with: str, used_with: str
) -> None:
    for n in range(3):
        await create_product(client, tenant_a, name=f"item {n}")
    first = await client.get(
        "/v1/products", params={"limit": 1, "include_deleted": made_with}, headers=tenant_a.headers
    )
    cursor = first.json()["next_cursor"]
    assert cursor

    same = await client.get(
        "/v1/products", params={"limit": 1, "include_deleted": made_with, "cursor": cursor}, headers=tenant_a.headers
    )
    other = await client.get(
        "/v1/products", params={"limit": 1, "include_deleted": used_with, "cursor": cursor}, headers=tenant_a.headers
    )

    assert same.status_code == 200
    _assert_problem(other, 400, "invalid-cursor")


@pytest.mark.parametrize("limit", ["0", "101", "-1"])
async def test_limit_out_of_range_answers_400(client: Client, tenant_a: Tenant, limit: str) -> None:
    response = await client.get(f"/v1/products?limit={limit}", headers=tenant_a.headers)
    body = _assert_problem(response, 400, "bad-request")
    assert [e["field"] for e in body["errors"]] == ["limit"]  # type: ignore[union-attr]


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_bounds_are_accepted(client: Client, tenant_a: Tenant, limit: int) -> None:
    await create_product(client, tenant_a)
    response = await client.get(f"/v1/products?limit={limit}", headers=tenant_a.headers)
    assert response.status_code == 200
    assert len(response.json()["data"]) == 1


# --- PATCH --------------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_present_and_bumps_updated_at(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_product(client, tenant_a, name="Cup", description="ceramic", price_cents=1200)
    before = await _row(admin_engine, created["id"])
    assert before is not None

    response = await client.patch(f"/v1/products/{created['id']}", json={"price_cents": 1500}, headers=tenant_a.headers)

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["price_cents"] == 1500
    for unchanged in ("id", "name", "description", "currency", "sku", "created_at", "deleted_at"):
        assert patched[unchanged] == created[unchanged], unchanged
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.fromisoformat(str(created["updated_at"]))
    after = await _row(admin_engine, created["id"])
    assert after is not None
    assert after["price_cents"] == 1500
    assert after["updated_at"] > before["updated_at"]
    assert {k: v for k, v in after.items() if k not in ("price_cents", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("price_cents", "updated_at")
    }


async def test_patch_of_several_fields_changes_exactly_those(client: Client, tenant_a: Tenant) -> None:
    created = await create_product(client, tenant_a, name="Cup", description="ceramic")
    response = await client.patch(
        f"/v1/products/{created['id']}", json={"name": "Mug", "description": ""}, headers=tenant_a.headers
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["name"], patched["description"]) == ("Mug", "")
    assert (patched["sku"], patched["price_cents"], patched["currency"]) == (
        created["sku"],
        created["price_cents"],
        created["currency"],
    )


async def test_patch_with_empty_body_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_product(client, tenant_a)
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.patch(f"/v1/products/{created['id']}", json={}, headers=tenant_a.headers)

    assert response.status_code == 200, response.text
    assert response.json() == created  # updated_at included
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_patch_to_a_taken_sku_answers_409_and_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    first = await create_product(client, tenant_a, sku="TAKEN-1")
    second = await create_product(client, tenant_a)
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.patch(
        f"/v1/products/{second['id']}", json={"sku": first["sku"], "name": "renamed"}, headers=tenant_a.headers
    )

    _assert_problem(response, 409, "conflict")
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_patch_of_a_deleted_product_answers_404(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{created['id']}", headers=tenant_a.headers)).status_code == 204
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.patch(f"/v1/products/{created['id']}", json={"name": "zombie"}, headers=tenant_a.headers)

    _assert_problem(response, 404, "not-found")
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


# --- SKU uniqueness -----------------------------------------------------------------------------


async def test_duplicate_sku_on_create_answers_409_without_internals(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    await create_product(client, tenant_a, sku="DUP-1")
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.post(
        "/v1/products",
        json={"name": "Other", "price_cents": 1, "currency": "EUR", "sku": "DUP-1"},
        headers=tenant_a.headers,
    )

    body = _assert_problem(response, 409, "conflict")
    assert set(body) <= {"type", "title", "status", "detail"}
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_same_sku_in_another_workspace_is_allowed(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """Uniqueness is per workspace (docs/security.md, contract rule 5): B learns nothing about A's SKUs."""
    await create_product(client, tenant_a, sku="SHARED-1")
    before_a = await snapshot_rows(admin_engine, "products", tenant_a.id)

    created_b = await create_product(client, tenant_b, sku="SHARED-1")

    assert created_b["sku"] == "SHARED-1"
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before_a


async def test_sku_can_be_reused_after_soft_delete(client: Client, tenant_a: Tenant) -> None:
    old = await create_product(client, tenant_a, sku="REUSE-1")
    assert (await client.delete(f"/v1/products/{old['id']}", headers=tenant_a.headers)).status_code == 204

    new = await create_product(client, tenant_a, sku="REUSE-1")

    assert new["id"] != old["id"]


async def test_restore_answers_409_when_the_sku_was_taken_again(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    old = await create_product(client, tenant_a, sku="RETAKEN-1")
    assert (await client.delete(f"/v1/products/{old['id']}", headers=tenant_a.headers)).status_code == 204
    await create_product(client, tenant_a, sku="RETAKEN-1")
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.post(f"/v1/products/{old['id']}/restore", headers=tenant_a.headers)

    _assert_problem(response, 409, "conflict")
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before
    row = await _row(admin_engine, old["id"])
    assert row is not None
    assert row["deleted_at"] is not None


# --- soft delete and restore --------------------------------------------------------------------


async def test_delete_is_soft_and_restore_brings_the_product_back(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    keep = await create_product(client, tenant_a, name="keep")
    gone = await create_product(client, tenant_a, name="gone")
    url = f"/v1/products/{gone['id']}"

    deleted = await client.delete(url, headers=tenant_a.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""

    _assert_problem(await client.get(url, headers=tenant_a.headers), 404, "not-found")
    shown = await client.get(url, params={"include_deleted": "true"}, headers=tenant_a.headers)
    assert shown.status_code == 200
    assert shown.json()["deleted_at"] is not None
    listed = (await client.get("/v1/products", headers=tenant_a.headers)).json()
    assert [p["id"] for p in listed["data"]] == [keep["id"]]
    listed_all = (await client.get("/v1/products?include_deleted=true", headers=tenant_a.headers)).json()
    assert [p["id"] for p in listed_all["data"]] == [keep["id"], gone["id"]]
    assert listed_all["data"][1]["deleted_at"] is not None
    row = await _row(admin_engine, gone["id"])
    assert row is not None  # the row is still there, only hidden
    assert row["deleted_at"] is not None
    assert row["tenant_id"] == tenant_a.id

    restored = await client.post(f"{url}/restore", headers=tenant_a.headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted_at"] is None
    assert restored.json()["name"] == "gone"
    assert (await client.get(url, headers=tenant_a.headers)).status_code == 200
    listed = (await client.get("/v1/products", headers=tenant_a.headers)).json()
    assert [p["id"] for p in listed["data"]] == [keep["id"], gone["id"]]
    row = await _row(admin_engine, gone["id"])
    assert row is not None
    assert row["deleted_at"] is None


async def test_deleting_a_deleted_product_answers_404_and_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{created['id']}", headers=tenant_a.headers)).status_code == 204
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.delete(f"/v1/products/{created['id']}", headers=tenant_a.headers)

    _assert_problem(response, 404, "not-found")
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before  # deleted_at not moved


# --- permissions: token scopes and the member's role --------------------------------------------


async def _token_headers(
    provisioning: ProvisioningService, tenant: Tenant, permissions: dict[str, str]
) -> dict[str, str]:
    issued, _ = await provisioning.issue_token(
        tenant.id, tenant.workspace.owner_membership_id, name="scoped", permissions=permissions
    )
    return {"Authorization": f"Bearer {issued.token}"}


def _assert_denied(response, permission: str) -> None:  # type: ignore[no-untyped-def]
    _assert_problem(response, 403, "permission-denied")
    assert response.headers["x-accepted-permissions"] == f"products={permission}"


async def test_read_only_token_can_read_but_every_write_is_denied(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    live = await create_product(client, tenant_a, name="live")
    deleted = await create_product(client, tenant_a, name="deleted")
    assert (await client.delete(f"/v1/products/{deleted['id']}", headers=tenant_a.headers)).status_code == 204
    read_only = await _token_headers(provisioning, tenant_a, {"products": "read"})
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    listed = await client.get("/v1/products", headers=read_only)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["data"]] == [live["id"]]
    assert (await client.get(f"/v1/products/{live['id']}", headers=read_only)).status_code == 200

    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "RO-1"}
    _assert_denied(await client.post("/v1/products", json=body, headers=read_only), "write")
    _assert_denied(await client.patch(f"/v1/products/{live['id']}", json={"name": "y"}, headers=read_only), "write")
    _assert_denied(await client.delete(f"/v1/products/{live['id']}", headers=read_only), "write")
    _assert_denied(await client.post(f"/v1/products/{deleted['id']}/restore", headers=read_only), "write")

    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_token_without_product_access_cannot_read(
    client: Client, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    created = await create_product(client, tenant_a)
    no_access = await _token_headers(provisioning, tenant_a, {"products": "none"})

    _assert_denied(await client.get("/v1/products", headers=no_access), "read")
    _assert_denied(await client.get(f"/v1/products/{created['id']}", headers=no_access), "read")


async def test_token_with_no_permissions_at_all_cannot_read(
    client: Client, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    empty = await _token_headers(provisioning, tenant_a, {"orders": "write"})
    _assert_denied(await client.get("/v1/products", headers=empty), "read")


async def test_viewer_role_narrows_a_write_token_at_once(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    await create_product(client, tenant_a)  # the owner's write token works before the demotion
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.memberships SET role = 'viewer' WHERE tenant_id = :t AND id = :m"),
            {"t": tenant_a.id, "m": tenant_a.workspace.owner_membership_id},
        )
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "VIEWER-1"}
    _assert_denied(await client.post("/v1/products", json=body, headers=tenant_a.headers), "write")
    assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200

    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before
