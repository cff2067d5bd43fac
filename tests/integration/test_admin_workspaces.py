"""/admin/v1/workspaces: create, get, list, update."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import WORKSPACES, Client, bearer, create_workspace, unique_slug, workspace_body, workspace_row

VIEW_FIELDS = {
    "id",
    "slug",
    "name",
    "status",
    "external_id",
    "metadata",
    "max_token_lifetime_days",
    "created_at",
    "updated_at",
    "suspended_at",
    "purge_after",
    "purged_at",
}


async def test_create_returns_the_workspace_and_a_working_owner_token(
    client: Client, admin_headers: dict[str, str]
) -> None:
    body = workspace_body(external_id=f"cus_{uuid.uuid4().hex}", metadata={"plan": "pro", "seats": 5})
    response = await client.post(WORKSPACES, json=body, headers=admin_headers)

    assert response.status_code == 201, response.text
    created = response.json()
    workspace = created["workspace"]
    assert set(workspace) >= VIEW_FIELDS
    assert workspace["slug"] == body["slug"]
    assert workspace["status"] == "active"
    assert workspace["external_id"] == body["external_id"]
    assert workspace["metadata"] == {"plan": "pro", "seats": 5}
    assert response.headers["location"] == f"{WORKSPACES}/{workspace['id']}"
    assert created["owner"]["user_created"] is True
    assert created["replayed"] is False
    token = created["owner_token"]
    assert token.startswith("tnt_")

    products = await client.get("/v1/products", headers=bearer(token))
    assert products.status_code == 200, products.text


async def test_owner_token_is_never_stored_in_clear(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    async with admin_engine.connect() as connection:
        dump = await connection.execute(
            text("SELECT t::text FROM public.personal_access_tokens AS t WHERE tenant_id = :w"),
            {"w": created["workspace"]["id"]},
        )
        rows = [r[0] for r in dump]
    assert rows
    assert not any(created["owner_token"] in row for row in rows)


async def test_owner_email_is_matched_case_insensitively(client: Client, admin_headers: dict[str, str]) -> None:
    email = f"Mixed-{uuid.uuid4().hex[:8]}@Example.com"
    first = await create_workspace(client, admin_headers, owner_email=email)
    second = await create_workspace(client, admin_headers, owner_email=email.lower())
    assert first["owner"]["user_created"] is True
    assert second["owner"]["user_created"] is False
    assert first["owner"]["user_id"] == second["owner"]["user_id"]


@pytest.mark.parametrize("field", ["slug", "external_id"])
async def test_duplicate_slug_or_external_id_is_a_conflict(
    client: Client, admin_headers: dict[str, str], field: str
) -> None:
    first = await create_workspace(client, admin_headers, external_id=f"ext-{uuid.uuid4().hex}")
    body = workspace_body(external_id=f"ext-{uuid.uuid4().hex}")
    body[field] = first["workspace"][field]
    response = await client.post(WORKSPACES, json=body, headers=admin_headers)
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "change",
    [
        {"slug": "Not A Slug"},
        {"slug": "-leading-hyphen"},
        {"owner_email": "not-an-email"},
        {"metadata": ["not", "an", "object"]},
        {"metadata": {"blob": "x" * 17_000}},
        {"tenant_id": str(uuid.uuid4())},
        {"name": ""},
    ],
)
async def test_invalid_create_bodies_are_rejected_and_create_nothing(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, change: dict[str, object]
) -> None:
    body = workspace_body(**change)
    response = await client.post(WORKSPACES, json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    async with admin_engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM public.workspaces WHERE name = :n"), {"n": body["name"]}
        )
        assert found.scalar_one() == 0


async def test_get_returns_the_view_and_unknown_ids_answer_404(client: Client, admin_headers: dict[str, str]) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id = created["workspace"]["id"]

    got = await client.get(f"{WORKSPACES}/{workspace_id}", headers=admin_headers)
    assert got.status_code == 200
    assert got.json() == created["workspace"]

    missing = await client.get(f"{WORKSPACES}/{uuid.uuid4()}", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"name": "x"}),
        ("POST", "/suspend", None),
        ("POST", "/reactivate", None),
        ("POST", "/schedule-deletion", None),
        ("POST", "/restore", None),
        ("POST", "/purge", None),
        ("GET", "/usage", None),
        ("GET", "/export", None),
        ("GET", "/export/products", None),
        ("GET", "/snapshot", None),
    ],
)
async def test_every_workspace_route_answers_404_for_an_unknown_id(
    client: Client, admin_headers: dict[str, str], method: str, suffix: str, body: dict[str, object] | None
) -> None:
    kwargs = {"json": body} if body is not None else {}
    response = await client.request(method, f"{WORKSPACES}/{uuid.uuid4()}{suffix}", headers=admin_headers, **kwargs)
    reference = await client.get(f"{WORKSPACES}/{uuid.uuid4()}", headers=admin_headers)
    assert response.status_code == 404, response.text
    assert response.content == reference.content


async def test_list_paginates_without_gaps_or_repeats(client: Client, admin_headers: dict[str, str]) -> None:
    created = {(await create_workspace(client, admin_headers))["workspace"]["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(WORKSPACES, params=params, headers=admin_headers)).json()
        assert len(page["data"]) <= 2
        seen.extend(w["id"] for w in page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert created <= set(seen)
    assert seen == sorted(seen)  # UUIDv7: oldest first


async def test_list_filters_by_status_and_binds_the_cursor_to_the_filter(
    client: Client, admin_headers: dict[str, str]
) -> None:
    active = await create_workspace(client, admin_headers)
    suspended = await create_workspace(client, admin_headers)
    await create_workspace(client, admin_headers)  # so a page of one has a next page
    response = await client.post(f"{WORKSPACES}/{suspended['workspace']['id']}/suspend", headers=admin_headers)
    assert response.status_code == 200

    listed = (await client.get(WORKSPACES, params={"status": "suspended", "limit": 100}, headers=admin_headers)).json()
    statuses = {w["status"] for w in listed["data"]}
    ids = {w["id"] for w in listed["data"]}
    assert statuses == {"suspended"}
    assert suspended["workspace"]["id"] in ids
    assert active["workspace"]["id"] not in ids

    first = (await client.get(WORKSPACES, params={"status": "active", "limit": 1}, headers=admin_headers)).json()
    assert first["has_more"]
    reused = await client.get(
        WORKSPACES, params={"status": "suspended", "cursor": first["next_cursor"]}, headers=admin_headers
    )
    assert reused.status_code == 400


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"status": "deleted"}, {"cursor": "junk"}])
async def test_list_rejects_bad_parameters(
    client: Client, admin_headers: dict[str, str], params: dict[str, object]
) -> None:
    response = await client.get(WORKSPACES, params=params, headers=admin_headers)
    assert response.status_code == 400, response.text


async def test_patch_changes_only_the_fields_present(client: Client, admin_headers: dict[str, str]) -> None:
    created = await create_workspace(client, admin_headers, external_id=f"ext-{uuid.uuid4().hex}", metadata={"a": 1})
    url = f"{WORKSPACES}/{created['workspace']['id']}"

    response = await client.patch(url, json={"name": "Renamed", "max_token_lifetime_days": 30}, headers=admin_headers)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Renamed"
    assert updated["max_token_lifetime_days"] == 30
    assert updated["metadata"] == {"a": 1}
    assert updated["external_id"] == created["workspace"]["external_id"]
    assert updated["updated_at"] > created["workspace"]["updated_at"]

    cleared = (
        await client.patch(url, json={"external_id": None, "metadata": {"b": [1, 2]}}, headers=admin_headers)
    ).json()
    assert cleared["external_id"] is None
    assert cleared["metadata"] == {"b": [1, 2]}
    assert cleared["name"] == "Renamed"


@pytest.mark.parametrize(
    "body",
    [
        {"max_token_lifetime_days": 0},
        {"max_token_lifetime_days": 367},
        {"name": ""},
        {"slug": "cannot-change"},
        {"status": "active"},
        {"metadata": {"blob": "x" * 17_000}},
    ],
)
async def test_patch_rejects_invalid_bodies_and_changes_nothing(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, body: dict[str, object]
) -> None:
    created = await create_workspace(client, admin_headers)
    before = await workspace_row(admin_engine, created["workspace"]["id"])
    response = await client.patch(f"{WORKSPACES}/{created['workspace']['id']}", json=body, headers=admin_headers)
    assert 400 <= response.status_code < 500
    assert response.status_code == 422, response.text
    assert await workspace_row(admin_engine, created["workspace"]["id"]) == before


async def test_patch_to_a_taken_external_id_is_a_conflict(client: Client, admin_headers: dict[str, str]) -> None:
    first = await create_workspace(client, admin_headers, external_id=f"ext-{uuid.uuid4().hex}")
    second = await create_workspace(client, admin_headers)
    response = await client.patch(
        f"{WORKSPACES}/{second['workspace']['id']}",
        json={"external_id": first["workspace"]["external_id"]},
        headers=admin_headers,
    )
    assert response.status_code == 409


async def test_unknown_slug_is_still_free_after_a_failed_create(client: Client, admin_headers: dict[str, str]) -> None:
    slug = unique_slug()
    bad = await client.post(WORKSPACES, json=workspace_body(slug=slug, owner_email="bad"), headers=admin_headers)
    assert bad.status_code == 422
    await create_workspace(client, admin_headers, slug=slug)
