"""Suspend, reactivate, schedule deletion, restore, purge."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.principal import AdminPrincipal, current_admin
from tenantry.settings import Settings
from tenantry.tenancy.session import platform_session_factory
from tenantry.workspaces.service import AdminWorkspaceService
from tenantry.workspaces.tables import tenant_tables
from tests.support import (
    WORKSPACES,
    Client,
    Tenant,
    add_products,
    bearer,
    count_rows,
    create_workspace,
    snapshot_all,
    snapshot_rows,
    workspace_row,
)


async def _post(client: Client, headers: dict[str, str], workspace_id: object, action: str, body: object = None):  # type: ignore[no-untyped-def]
    return await client.post(f"{WORKSPACES}/{workspace_id}/{action}", json=body, headers=headers)


async def _move_purge_date_to_the_past(admin_engine: AsyncEngine, workspace_id: object) -> None:
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET purge_after = now() - interval '1 minute' WHERE id = :id"),
            {"id": workspace_id},
        )


async def _tenant_calls(client: Client, token: str, product_id: str) -> list[tuple[int, str]]:
    body = {"name": "new", "price_cents": 1, "currency": "EUR", "sku": f"S-{uuid.uuid4().hex[:6]}"}
    answers = [
        await client.get("/v1/products", headers=bearer(token)),
        await client.get(f"/v1/products/{product_id}", headers=bearer(token)),
        await client.post("/v1/products", json=body, headers=bearer(token)),
        await client.patch(f"/v1/products/{product_id}", json={"name": "changed"}, headers=bearer(token)),
        await client.delete(f"/v1/products/{product_id}", headers=bearer(token)),
    ]
    return [(r.status_code, r.json()["type"].rsplit("/", 1)[-1]) for r in answers]


# -- suspension --------------------------------------------------------------------------------


async def test_suspension_refuses_every_token_and_changes_no_data(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, tenant_b: Tenant
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id, token = uuid.UUID(created["workspace"]["id"]), created["owner_token"]
    [product] = await add_products(client, token, 1)
    before_b = await snapshot_all(admin_engine, tenant_b.id)

    suspended = await _post(client, admin_headers, workspace_id, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["suspended_at"] is not None
    before = await snapshot_all(admin_engine, workspace_id)  # the suspension's own audit event included

    calls = await _tenant_calls(client, token, product["id"])
    assert calls == [(403, "workspace-suspended")] * len(calls)
    assert await snapshot_all(admin_engine, workspace_id) == before
    assert await snapshot_all(admin_engine, tenant_b.id) == before_b
    # Other workspaces keep working.
    assert (await client.get("/v1/products", headers=tenant_b.headers)).status_code == 200

    reactivated = await _post(client, admin_headers, workspace_id, "reactivate")
    assert reactivated.status_code == 200
    assert reactivated.json()["status"] == "active"
    assert reactivated.json()["suspended_at"] is None
    assert (await client.get(f"/v1/products/{product['id']}", headers=bearer(token))).json() == product


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "reactivate"),
        (["suspend"], "suspend"),
        (["schedule-deletion"], "suspend"),
        (["schedule-deletion"], "reactivate"),
        (["schedule-deletion"], "schedule-deletion"),
        ([], "restore"),
        (["suspend"], "restore"),
        ([], "purge"),
        (["suspend"], "purge"),
        (["schedule-deletion", "purge"], "suspend"),
        (["schedule-deletion", "purge"], "restore"),
        (["schedule-deletion", "purge"], "purge"),
        (["schedule-deletion", "purge"], "schedule-deletion"),
    ],
)
async def test_illegal_transitions_are_conflicts_and_change_nothing(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, setup: list[str], action: str
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace = created["workspace"]
    for step in setup:
        body = {"confirm_slug": workspace["slug"]} if step == "purge" else None
        assert (await _post(client, admin_headers, workspace["id"], step, body)).status_code == 200
    before = await workspace_row(admin_engine, workspace["id"])

    body = {"confirm_slug": workspace["slug"]} if action == "purge" else None
    response = await _post(client, admin_headers, workspace["id"], action, body)
    assert response.status_code == 409, response.text
    assert await workspace_row(admin_engine, workspace["id"]) == before


async def test_a_purged_workspace_cannot_be_patched(client: Client, admin_headers: dict[str, str]) -> None:
    workspace = (await create_workspace(client, admin_headers))["workspace"]
    await _post(client, admin_headers, workspace["id"], "schedule-deletion")
    await _post(client, admin_headers, workspace["id"], "purge", {"confirm_slug": workspace["slug"]})
    response = await client.patch(f"{WORKSPACES}/{workspace['id']}", json={"name": "x"}, headers=admin_headers)
    assert response.status_code == 409


# -- scheduled deletion and restore ------------------------------------------------------------


async def test_scheduled_deletion_refuses_tokens_and_restore_brings_them_back(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id, token = created["workspace"]["id"], created["owner_token"]
    [product] = await add_products(client, token, 1)
    before = await snapshot_rows(admin_engine, "products", uuid.UUID(workspace_id))

    scheduled = await _post(client, admin_headers, workspace_id, "schedule-deletion")
    assert scheduled.status_code == 200, scheduled.text
    view = scheduled.json()
    assert view["status"] == "pending_deletion"
    purge_after = datetime.fromisoformat(view["purge_after"])
    expected = datetime.fromisoformat(view["updated_at"]) + timedelta(days=30)
    assert abs(purge_after - expected) < timedelta(seconds=5)

    calls = await _tenant_calls(client, token, product["id"])
    assert calls == [(403, "workspace-pending-deletion")] * len(calls)
    assert await snapshot_rows(admin_engine, "products", uuid.UUID(workspace_id)) == before

    restored = await _post(client, admin_headers, workspace_id, "restore")
    assert restored.status_code == 200
    assert restored.json()["status"] == "active"
    assert restored.json()["purge_after"] is None
    assert (await client.get("/v1/products", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(("days", "status"), [(1, 200), (365, 200), (0, 422), (366, 422), ("x", 422)])
async def test_schedule_deletion_takes_1_to_365_days(
    client: Client, admin_headers: dict[str, str], days: object, status: int
) -> None:
    workspace_id = (await create_workspace(client, admin_headers))["workspace"]["id"]
    response = await _post(client, admin_headers, workspace_id, "schedule-deletion", {"purge_after_days": days})
    assert response.status_code == status, response.text
    if status == 200:
        view = response.json()
        delta = datetime.fromisoformat(view["purge_after"]) - datetime.fromisoformat(view["updated_at"])
        assert abs(delta - timedelta(days=int(days))) < timedelta(seconds=5)  # type: ignore[call-overload]


async def test_restore_after_the_purge_date_is_a_conflict(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    workspace_id = (await create_workspace(client, admin_headers))["workspace"]["id"]
    await _post(client, admin_headers, workspace_id, "schedule-deletion")
    await _move_purge_date_to_the_past(admin_engine, workspace_id)
    response = await _post(client, admin_headers, workspace_id, "restore")
    assert response.status_code == 409
    assert (await client.get(f"{WORKSPACES}/{workspace_id}", headers=admin_headers)).json()["status"] == (
        "pending_deletion"
    )


# -- purge -------------------------------------------------------------------------------------


async def _directory(admin_engine: AsyncEngine, workspace_id: object) -> list[bytes]:
    """The workspace's token digests in the token directory, past RLS."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT token_digest FROM public.token_directory WHERE workspace_id = :w ORDER BY 1"),
            {"w": workspace_id},
        )
        return [bytes(row[0]) for row in rows]


async def test_purge_deletes_every_tenant_row_keeps_a_tombstone_and_spares_other_workspaces(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, tenant_b: Tenant
) -> None:
    created = await create_workspace(client, admin_headers, external_id=f"ext-{uuid.uuid4().hex}", metadata={"a": 1})
    workspace = created["workspace"]
    await add_products(client, created["owner_token"], 3)
    await add_products(client, tenant_b.token, 2)
    await _post(client, admin_headers, workspace["id"], "schedule-deletion", {"purge_after_days": 1})
    before = await count_rows(admin_engine, workspace["id"])
    assert before["products"] == 3
    assert before["memberships"] == 1
    assert before["personal_access_tokens"] == 1
    before_b = await snapshot_all(admin_engine, tenant_b.id)
    assert len(await _directory(admin_engine, workspace["id"])) == 1  # the owner token's digest
    directory_b = await _directory(admin_engine, tenant_b.id)

    early = await _post(client, admin_headers, workspace["id"], "purge")
    assert early.status_code == 409  # the date has not come and no confirmation was given
    wrong = await _post(client, admin_headers, workspace["id"], "purge", {"confirm_slug": "not-the-slug"})
    assert wrong.status_code == 422
    assert await count_rows(admin_engine, workspace["id"]) == before

    response = await _post(client, admin_headers, workspace["id"], "purge", {"confirm_slug": workspace["slug"]})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["deleted"] == before
    assert set(report["deleted"]) == {t.name for t in tenant_tables()}
    assert await count_rows(admin_engine, workspace["id"]) == dict.fromkeys(before, 0)
    assert await snapshot_all(admin_engine, tenant_b.id) == before_b
    # The token directory is global: the purge deletes the workspace's digests there too, only its.
    assert await _directory(admin_engine, workspace["id"]) == []
    assert await _directory(admin_engine, tenant_b.id) == directory_b

    tombstone = (await client.get(f"{WORKSPACES}/{workspace['id']}", headers=admin_headers)).json()
    assert tombstone["status"] == "purged"
    assert tombstone["purged_at"] is not None
    assert tombstone["slug"] == workspace["slug"]
    assert tombstone["purge_report"] == before
    assert tombstone["metadata"] == {}
    assert tombstone["external_id"] is None
    # The token died with its rows.
    assert (await client.get("/v1/products", headers=bearer(created["owner_token"]))).status_code == 401
    # The slug stays taken by the tombstone.
    again = await client.post(
        WORKSPACES, json={"slug": workspace["slug"], "name": "x", "owner_email": "x@example.com"}, headers=admin_headers
    )
    assert again.status_code == 409


async def test_purge_is_allowed_without_confirmation_once_the_date_has_passed(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id = created["workspace"]["id"]
    await add_products(client, created["owner_token"], 2)
    await _post(client, admin_headers, workspace_id, "schedule-deletion")
    await _move_purge_date_to_the_past(admin_engine, workspace_id)
    response = await _post(client, admin_headers, workspace_id, "purge")
    assert response.status_code == 200, response.text
    assert response.json()["deleted"]["products"] == 2
    assert sum((await count_rows(admin_engine, workspace_id)).values()) == 0


async def test_purge_due_purges_only_workspaces_past_their_date(
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    due = await create_workspace(client, admin_headers)
    not_yet = await create_workspace(client, admin_headers)
    active = await create_workspace(client, admin_headers)
    for created in (due, not_yet):
        await add_products(client, created["owner_token"], 1)
        await _post(client, admin_headers, created["workspace"]["id"], "schedule-deletion")
    await _move_purge_date_to_the_past(admin_engine, due["workspace"]["id"])
    not_yet_before = await snapshot_all(admin_engine, uuid.UUID(not_yet["workspace"]["id"]))
    active_before = await snapshot_all(admin_engine, uuid.UUID(active["workspace"]["id"]))

    reset = current_admin.set(AdminPrincipal(token_id=None, name="test:purge-due"))
    try:
        async with platform_session_factory(app_engine, settings)() as session:
            reports = await AdminWorkspaceService(session, settings, b"k" * 32).purge_due()
    finally:
        current_admin.reset(reset)

    assert due["workspace"]["id"] in {str(r.workspace.id) for r in reports}
    assert not_yet["workspace"]["id"] not in {str(r.workspace.id) for r in reports}
    assert sum((await count_rows(admin_engine, due["workspace"]["id"])).values()) == 0
    assert await snapshot_all(admin_engine, uuid.UUID(not_yet["workspace"]["id"])) == not_yet_before
    assert await snapshot_all(admin_engine, uuid.UUID(active["workspace"]["id"])) == active_before
    statuses = {
        created["workspace"]["id"]: (
            await client.get(f"{WORKSPACES}/{created['workspace']['id']}", headers=admin_headers)
        ).json()["status"]
        for created in (due, not_yet, active)
    }
    assert statuses == {
        due["workspace"]["id"]: "purged",
        not_yet["workspace"]["id"]: "pending_deletion",
        active["workspace"]["id"]: "active",
    }
