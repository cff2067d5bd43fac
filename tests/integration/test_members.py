"""Members: the last active owner, owner-only changes, deactivation and demotion on the next request."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.testing import transport as litestar_transport
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import Tenant, create_product, join, snapshot_rows, workspace_audit

Client = AsyncTestClient[Litestar]


def owner_id(tenant: Tenant) -> str:
    return str(tenant.workspace.owner_membership_id)


async def last_owner_attempt(client: Client, tenant: Tenant, action: str, member_id: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    if action == "demote":
        return await client.patch(f"/v1/members/{member_id}", json={"role": "admin"}, headers=headers)
    if action == "deactivate":
        return await client.post(f"/v1/members/{member_id}/deactivate", headers=headers)
    return await client.delete(f"/v1/members/{member_id}", headers=headers)


# -- the last active owner --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["demote", "deactivate", "remove"])
async def test_last_active_owner_cannot_be_demoted_deactivated_or_removed(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, action: str
) -> None:
    await join(client, tenant_a, "admin")  # other members do not count
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    tokens_before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)

    response = await last_owner_attempt(client, tenant_a, action, owner_id(tenant_a), tenant_a.headers)

    assert response.status_code == 409, response.text
    assert "at least one active owner" in response.json()["detail"]
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == tokens_before
    assert (await client.get("/v1/members/me", headers=tenant_a.headers)).json()["role"] == "owner"


@pytest.mark.parametrize("action", ["demote", "deactivate", "remove"])
async def test_a_second_owner_lets_the_first_step_down(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, action: str
) -> None:
    second = await join(client, tenant_a, "admin")
    promoted = await client.patch(f"/v1/members/{second.id}", json={"role": "owner"}, headers=tenant_a.headers)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"

    response = await last_owner_attempt(client, tenant_a, action, owner_id(tenant_a), second.headers)
    assert response.status_code in (200, 204), response.text

    # Now the second owner is the last active one.
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    again = await last_owner_attempt(client, tenant_a, action, second.id, second.headers)
    assert again.status_code == 409
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before


async def test_an_inactive_owner_does_not_count_as_the_remaining_owner(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    second = await join(client, tenant_a, "owner")
    assert (await client.post(f"/v1/members/{second.id}/deactivate", headers=tenant_a.headers)).status_code == 200
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    response = await client.patch(
        f"/v1/members/{owner_id(tenant_a)}", json={"role": "member"}, headers=tenant_a.headers
    )
    assert response.status_code == 409
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    # The inactive owner may be removed: it is not the last active one.
    assert (await client.delete(f"/v1/members/{second.id}", headers=tenant_a.headers)).status_code == 204


class _ThreadTransport(litestar_transport.TestClientTransport, httpx.BaseTransport):  # type: ignore[type-arg]
    """The test client's transport for a plain httpx.Client, so requests can run in threads.

    The test client blocks its caller's event loop for the duration of each request, so requests
    started with asyncio.gather run one after the other; from threads they really overlap.
    """


async def _wait_for_lock_waiters(admin_engine: AsyncEngine, count: int, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        async with admin_engine.connect() as connection:
            waiting = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        if waiting >= count:
            return
        await asyncio.sleep(0.05)


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    second = await join(client, tenant_a, "owner")
    transport = _ThreadTransport(client=client, raise_server_exceptions=False)

    def demote(member_id: str, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(transport=transport, base_url=str(client.base_url)) as http:
            return http.patch(f"/v1/members/{member_id}", json={"role": "member"}, headers=headers)

    # Hold both owner rows, let both requests queue up behind them, then let go at once.
    async with admin_engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            text("SELECT id FROM public.memberships WHERE tenant_id = :t AND role = 'owner' FOR UPDATE"),
            {"t": tenant_a.id},
        )
        answers_pending = asyncio.gather(
            asyncio.to_thread(demote, second.id, tenant_a.headers),
            asyncio.to_thread(demote, owner_id(tenant_a), second.headers),
        )
        await _wait_for_lock_waiters(admin_engine, 2)
        await holder.commit()
    answers = await answers_pending

    codes = sorted(a.status_code for a in answers)
    assert codes[0] == 200, [a.text for a in answers]
    assert codes[1] in (403, 409), [a.text for a in answers]
    async with admin_engine.connect() as connection:
        owners = (
            await connection.execute(
                text("SELECT count(*) FROM public.memberships WHERE tenant_id = :t AND role = 'owner' AND is_active"),
                {"t": tenant_a.id},
            )
        ).scalar_one()
    assert owners == 1


# -- only owners touch owners -----------------------------------------------------------------


async def test_an_admin_cannot_touch_owners(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    admin = await join(client, tenant_a, "admin")
    member = await join(client, tenant_a, "member")
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    owner = owner_id(tenant_a)

    attempts = [
        client.patch(f"/v1/members/{owner}", json={"role": "admin"}, headers=admin.headers),
        client.patch(f"/v1/members/{owner}", json={"display_name": "Renamed"}, headers=admin.headers),
        client.patch(f"/v1/members/{member.id}", json={"role": "owner"}, headers=admin.headers),
        client.patch(f"/v1/members/{admin.id}", json={"role": "owner"}, headers=admin.headers),
        client.post(f"/v1/members/{owner}/deactivate", headers=admin.headers),
        client.post(f"/v1/members/{owner}/reactivate", headers=admin.headers),
        client.delete(f"/v1/members/{owner}", headers=admin.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("/owner-required")
        assert "members:write" not in response.text
        assert "X-Accepted-Permissions" not in response.headers
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before

    # Everything below the owner is the admin's to change.
    demoted = await client.patch(f"/v1/members/{member.id}", json={"role": "viewer"}, headers=admin.headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "viewer"


async def test_members_write_is_needed_to_change_others(client: Client, tenant_a: Tenant) -> None:
    member = await join(client, tenant_a, "member")
    viewer = await join(client, tenant_a, "viewer")
    response = await client.patch(f"/v1/members/{viewer.id}", json={"display_name": "x"}, headers=member.headers)
    assert response.status_code == 403
    assert response.headers["X-Accepted-Permissions"] == "members=write"
    assert (await client.get(f"/v1/members/{viewer.id}", headers=member.headers)).status_code == 200


# -- deactivation, reactivation, removal, demotion: on the very next request ------------------


async def test_deactivation_stops_tokens_on_the_next_request_and_reactivation_restores_them(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    member = await join(client, tenant_a, "member")
    assert (await client.get("/v1/products", headers=member.headers)).status_code == 200

    deactivated = await client.post(f"/v1/members/{member.id}/deactivate", headers=tenant_a.headers)
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False
    refused = await client.get("/v1/products", headers=member.headers)
    unknown = await client.get("/v1/products", headers={"Authorization": "Bearer tnt_unknown"})
    assert refused.status_code == 401
    assert refused.content == unknown.content
    assert (await client.get("/v1/members/me", headers=member.headers)).status_code == 401

    reactivated = await client.post(f"/v1/members/{member.id}/reactivate", headers=tenant_a.headers)
    assert reactivated.status_code == 200
    assert reactivated.json()["is_active"] is True
    assert (await client.get("/v1/products", headers=member.headers)).status_code == 200

    actions = [(e["action"], e["target_id"]) for e in await workspace_audit(admin_engine, tenant_a.id)]
    assert ("member.deactivated", member.id) in actions
    assert ("member.reactivated", member.id) in actions


async def test_demotion_narrows_existing_tokens_at_once(client: Client, tenant_a: Tenant) -> None:
    member = await join(client, tenant_a, "member")
    await create_product(client, tenant_a)
    created = await client.post(
        "/v1/products",
        json={"name": "Mine", "price_cents": 1, "currency": "EUR", "sku": f"M-{uuid.uuid4().hex[:8]}"},
        headers=member.headers,
    )
    assert created.status_code == 201

    demoted = await client.patch(f"/v1/members/{member.id}", json={"role": "viewer"}, headers=tenant_a.headers)
    assert demoted.status_code == 200

    refused = await client.post(
        "/v1/products",
        json={"name": "More", "price_cents": 1, "currency": "EUR", "sku": f"M-{uuid.uuid4().hex[:8]}"},
        headers=member.headers,
    )
    assert refused.status_code == 403
    assert refused.headers["X-Accepted-Permissions"] == "products=write"
    assert (await client.get("/v1/products", headers=member.headers)).status_code == 200

    restored = await client.patch(f"/v1/members/{member.id}", json={"role": "member"}, headers=tenant_a.headers)
    assert restored.status_code == 200
    again = await client.post(
        "/v1/products",
        json={"name": "Again", "price_cents": 1, "currency": "EUR", "sku": f"M-{uuid.uuid4().hex[:8]}"},
        headers=member.headers,
    )
    assert again.status_code == 201


async def test_removing_a_member_removes_their_tokens(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    member = await join(client, tenant_a, "admin")
    removed = await client.delete(f"/v1/members/{member.id}", headers=tenant_a.headers)
    assert removed.status_code == 204
    assert (await client.get("/v1/members/me", headers=member.headers)).status_code == 401
    assert (await client.get(f"/v1/members/{member.id}", headers=tenant_a.headers)).status_code == 404
    async with admin_engine.connect() as connection:
        left = (
            await connection.execute(
                text("SELECT count(*) FROM public.personal_access_tokens WHERE tenant_id = :t AND membership_id = :m"),
                {"t": tenant_a.id, "m": uuid.UUID(member.id)},
            )
        ).scalar_one()
        user_kept = (
            await connection.execute(
                text("SELECT count(*) FROM public.users WHERE lower(email) = lower(:e)"), {"e": member.email}
            )
        ).scalar_one()
    assert left == 0
    assert user_kept == 1
    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "member.removed"]
    assert [e["target_id"] for e in events] == [member.id]
    # The membership id (the target) and the email identify who left; never the global user id.
    assert events[0]["details"] == {"email": member.email, "role": "admin"}


async def test_role_changes_are_audited_with_from_and_to(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    member = await join(client, tenant_a, "viewer")
    await client.patch(
        f"/v1/members/{member.id}", json={"role": "admin", "display_name": "Grace"}, headers=tenant_a.headers
    )
    await client.patch(f"/v1/members/{member.id}", json={"role": "admin"}, headers=tenant_a.headers)  # no change
    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["target_id"] == member.id]
    changed = [e for e in events if e["action"] == "member.role_changed"]
    assert len(changed) == 1
    assert changed[0]["details"] == {"from": "viewer", "to": "admin"}
    assert str(changed[0]["actor_member_id"]) == owner_id(tenant_a)
    assert [e["action"] for e in events].count("member.profile_updated") == 1


# -- profiles and reads -----------------------------------------------------------------------


async def test_any_member_edits_their_own_profile(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    viewer = await join(client, tenant_a, "viewer", display_name="Before")
    assert (await client.get("/v1/members/me", headers=viewer.headers)).json()["display_name"] == "Before"

    updated = await client.patch("/v1/members/me", json={"display_name": "After"}, headers=viewer.headers)
    assert updated.status_code == 200
    assert updated.json()["display_name"] == "After"
    assert updated.json()["role"] == "viewer"
    assert (await client.get(f"/v1/members/{viewer.id}", headers=tenant_a.headers)).json()["display_name"] == "After"

    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    for body in ({"display_name": "x", "role": "owner"}, {"role": "owner"}, {"display_name": "bad\u0000name"}):
        assert (await client.patch("/v1/members/me", json=body, headers=viewer.headers)).status_code == 422
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "member.profile_updated"]
    assert [str(e["actor_member_id"]) for e in events] == [viewer.id]


async def test_a_token_without_members_access_still_reads_its_own_membership(
    client: Client,
    provisioning,
    tenant_a: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    issued, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="products only", permissions={"products": "read"}
    )
    headers = {"Authorization": f"Bearer {issued.token}"}
    me = await client.get("/v1/members/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == owner_id(tenant_a)
    assert (await client.get("/v1/members", headers=headers)).status_code == 403


async def test_member_list_shows_emails_of_own_members_only(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await join(client, tenant_a, "member", display_name="Own")
    foreign = await join(client, tenant_b, "member")
    listed = await client.get("/v1/members?limit=100", headers=tenant_a.headers)
    assert listed.status_code == 200
    members = listed.json()["data"]
    assert {m["id"] for m in members} == {owner_id(tenant_a), own.id}
    mine = next(m for m in members if m["id"] == own.id)
    assert mine["email"] == own.email
    assert mine["display_name"] == "Own"
    assert set(mine) == {"id", "email", "display_name", "role", "is_active", "created_at", "updated_at"}
    assert all("user_id" not in m for m in members)
    assert all(m["email"].endswith("@example.com") for m in members)
    assert foreign.email not in listed.text
    assert f"-{tenant_b.workspace.slug}@" not in listed.text


async def test_member_list_filters_and_paginates(client: Client, tenant_a: Tenant) -> None:
    joined = [await join(client, tenant_a, role) for role in ("admin", "viewer", "viewer")]
    await client.post(f"/v1/members/{joined[2].id}/deactivate", headers=tenant_a.headers)

    seen, cursor = [], None
    while True:
        page = (
            await client.get("/v1/members?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=tenant_a.headers)
        ).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == sorted([owner_id(tenant_a), *(j.id for j in joined)])

    viewers = (await client.get("/v1/members?role=viewer", headers=tenant_a.headers)).json()["data"]
    assert {m["id"] for m in viewers} == {joined[1].id, joined[2].id}
    inactive = (await client.get("/v1/members?is_active=false", headers=tenant_a.headers)).json()["data"]
    assert [m["id"] for m in inactive] == [joined[2].id]
    assert (await client.get("/v1/members?role=king", headers=tenant_a.headers)).status_code == 400

    first = (await client.get("/v1/members?limit=1", headers=tenant_a.headers)).json()
    misused = await client.get(
        f"/v1/members?limit=1&role=viewer&cursor={first['next_cursor']}", headers=tenant_a.headers
    )
    assert misused.status_code == 400


# -- other workspaces -------------------------------------------------------------------------
# Another workspace's ids on every route that takes one: tests/isolation/test_foreign_ids.py.
