"""Every admin action is audited, in the platform log and in the workspace's own log."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import WORKSPACES, Client, create_workspace, platform_events, tenant_events

AUDIT = "/admin/v1/audit-events"


async def test_each_workspace_action_lands_in_both_logs(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id = created["workspace"]["id"]
    url = f"{WORKSPACES}/{workspace_id}"
    steps = [
        ("PATCH", "", {"name": "Renamed"}, "workspace.updated"),
        ("POST", "/suspend", None, "workspace.suspended"),
        ("POST", "/reactivate", None, "workspace.reactivated"),
        ("GET", "/export", None, "workspace.exported"),
        ("GET", "/export/products", None, "workspace.table_exported"),
        ("GET", "/snapshot", None, "workspace.exported"),
        ("POST", "/schedule-deletion", None, "workspace.deletion_scheduled"),
        ("POST", "/restore", None, "workspace.restored"),
    ]
    for method, suffix, body, _ in steps:
        response = await client.request(method, url + suffix, json=body, headers=admin_headers)
        assert response.status_code == 200, (suffix, response.text)

    expected = ["workspace.created"] + [action for *_, action in steps]
    assert await platform_events(admin_engine, workspace_id) == expected
    assert await tenant_events(admin_engine, workspace_id) == [(action, "admin") for action in expected]


async def test_the_purge_is_audited_in_the_platform_log_only(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    workspace = (await create_workspace(client, admin_headers))["workspace"]
    await client.post(f"{WORKSPACES}/{workspace['id']}/schedule-deletion", headers=admin_headers)
    purged = await client.post(
        f"{WORKSPACES}/{workspace['id']}/purge", json={"confirm_slug": workspace["slug"]}, headers=admin_headers
    )
    assert purged.status_code == 200
    assert (await platform_events(admin_engine, workspace["id"]))[-1] == "workspace.purged"
    # The workspace's own log was part of what the purge deleted; nothing is written back into it.
    assert await tenant_events(admin_engine, workspace["id"]) == []
    async with admin_engine.connect() as connection:
        details = (
            await connection.execute(
                text(
                    "SELECT details FROM public.platform_audit_events WHERE workspace_id = :w "
                    "AND action = 'workspace.purged'"
                ),
                {"w": workspace["id"]},
            )
        ).scalar_one()
    assert details["deleted"] == purged.json()["deleted"]
    assert details["early"] is True


async def test_events_name_the_admin_token_and_request(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    response = await client.post(
        WORKSPACES,
        json={"slug": f"rq-{uuid.uuid4().hex[:10]}", "name": "R", "owner_email": f"{uuid.uuid4().hex}@x.org"},
        headers={**admin_headers, "X-Request-Id": request_id},
    )
    assert response.status_code == 201
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT e.actor, e.admin_token_id, e.token_fingerprint, t.name FROM public.platform_audit_events e "
                    "JOIN public.admin_tokens t ON t.id = e.admin_token_id WHERE e.request_id = :r"
                ),
                {"r": request_id},
            )
        ).one()
        tenant_row = (
            await connection.execute(
                text("SELECT actor_admin_token_id, actor_type FROM public.audit_events WHERE request_id = :r"),
                {"r": request_id},
            )
        ).one()
    assert row.actor == row.name
    assert row.token_fingerprint
    assert tenant_row.actor_admin_token_id == row.admin_token_id
    assert tenant_row.actor_type == "admin"


async def test_a_refused_action_writes_no_event(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    workspace_id = (await create_workspace(client, admin_headers))["workspace"]["id"]
    before = await platform_events(admin_engine, workspace_id)
    assert (await client.post(f"{WORKSPACES}/{workspace_id}/reactivate", headers=admin_headers)).status_code == 409
    assert await platform_events(admin_engine, workspace_id) == before


async def test_platform_audit_list_is_newest_first_filtered_and_paginated(
    client: Client, admin_headers: dict[str, str]
) -> None:
    first = (await create_workspace(client, admin_headers))["workspace"]["id"]
    second = (await create_workspace(client, admin_headers))["workspace"]["id"]
    for workspace_id in (first, second, first):
        await client.post(f"{WORKSPACES}/{workspace_id}/suspend", headers=admin_headers)
        await client.post(f"{WORKSPACES}/{workspace_id}/reactivate", headers=admin_headers)

    listed = (await client.get(AUDIT, params={"workspace_id": first, "limit": 100}, headers=admin_headers)).json()
    actions = [e["action"] for e in listed["data"]]
    assert actions == [
        "workspace.reactivated",
        "workspace.suspended",
        "workspace.reactivated",
        "workspace.suspended",
        "workspace.created",
    ]
    assert {e["workspace_id"] for e in listed["data"]} == {first}
    times = [e["occurred_at"] for e in listed["data"]]
    assert times == sorted(times, reverse=True)

    pages, cursor = [], None
    while True:
        params = {"workspace_id": first, "action": "workspace.suspended", "limit": 1}
        page = (
            await client.get(AUDIT, params={**params, **({"cursor": cursor} if cursor else {})}, headers=admin_headers)
        ).json()
        pages.append(page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert [len(p) for p in pages] == [1, 1]
    assert {e["action"] for p in pages for e in p} == {"workspace.suspended"}

    other_filter = await client.get(
        AUDIT, params={"workspace_id": second, "action": "workspace.suspended", "cursor": cursor}, headers=admin_headers
    )
    assert other_filter.status_code == 400


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"workspace_id": "nope"}, {"action": "DROP TABLE"}, {"cursor": "x.y"}]
)
async def test_platform_audit_list_rejects_bad_parameters(
    client: Client, admin_headers: dict[str, str], params: dict[str, object]
) -> None:
    response = await client.get(AUDIT, params=params, headers=admin_headers)
    assert response.status_code == 400, response.text
