"""Invitations: hashed tokens, expiry, one 410 for every unusable token, accepting creates the member."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.tokens import INVITATION_TOKEN_PREFIX, generate_token
from tenantry.core.permissions import role_permissions
from tests.conftest import TEST_PEPPER, Tenant, snapshot_rows

Client = AsyncTestClient[Litestar]
PASSWORD = "correct horse battery staple"


@dataclass
class Joined:
    """A member who joined through an invitation, with their first token and password."""

    member: dict[str, object]
    token: str
    email: str
    password: str | None

    @property
    def id(self) -> str:
        return str(self.member["id"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


async def invite(
    client: Client, inviter_headers: dict[str, str], email: str, role: str = "member", **fields: object
) -> dict[str, object]:
    response = await client.post(
        "/v1/invitations", json={"email": email, "role": role, **fields}, headers=inviter_headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def join(
    client: Client,
    tenant: Tenant,
    role: str = "member",
    *,
    email: str | None = None,
    password: str | None = PASSWORD,
    display_name: str = "",
) -> Joined:
    """Invite (as the tenant's owner) and accept: a new member with a token of their own."""
    email = email or new_email(role)
    invitation = await invite(client, tenant.headers, email, role)
    body: dict[str, object] = {"token": invitation["token"], "display_name": display_name}
    if password is not None:
        body["password"] = password
    response = await client.post("/v1/invitations/accept", json=body)
    assert response.status_code == 201, response.text
    accepted = response.json()
    return Joined(member=accepted["member"], token=accepted["token"]["token"], email=email, password=password)


async def invitation_row(admin_engine: AsyncEngine, tenant_id: uuid.UUID, invitation_id: object) -> dict[str, object]:
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT i.*, i::text AS as_text FROM public.invitations AS i WHERE tenant_id = :t AND id = :id"),
                {"t": tenant_id, "id": uuid.UUID(str(invitation_id))},
            )
        ).one()
    return dict(row._mapping)


async def audit_actions(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> list[dict[str, object]]:
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT * FROM public.audit_events WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id}
        )
        return [dict(r._mapping) for r in rows]


# -- creating ---------------------------------------------------------------------------------


async def test_invitation_token_is_shown_once_and_stored_only_as_its_digest(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await invite(client, tenant_a.headers, new_email())
    token = str(created["token"])
    assert token.startswith(INVITATION_TOKEN_PREFIX)
    assert created["status"] == "pending"

    row = await invitation_row(admin_engine, tenant_a.id, created["id"])
    assert bytes(row["token_digest"]) == hmac.new(TEST_PEPPER.encode(), token.encode(), hashlib.sha256).digest()
    assert token not in str(row["as_text"])
    assert token[4:] not in str(row["as_text"])

    fetched = await client.get(f"/v1/invitations/{created['id']}", headers=tenant_a.headers)
    listed = await client.get("/v1/invitations", headers=tenant_a.headers)
    assert fetched.status_code == 200
    assert "token" not in fetched.json()
    assert token not in fetched.text
    assert token not in listed.text


async def test_invitation_lives_7_days_by_default_and_30_at_most(client: Client, tenant_a: Tenant) -> None:
    default = await invite(client, tenant_a.headers, new_email())
    longest = await invite(client, tenant_a.headers, new_email(), expires_in_days=30)

    def lifetime(invitation: dict[str, object]) -> timedelta:
        return datetime.fromisoformat(str(invitation["expires_at"])) - datetime.fromisoformat(
            str(invitation["created_at"])
        )

    assert abs(lifetime(default) - timedelta(days=7)) < timedelta(minutes=1)
    assert abs(lifetime(longest) - timedelta(days=30)) < timedelta(minutes=1)
    for days in (31, 0, -1):
        response = await client.post(
            "/v1/invitations",
            json={"email": new_email(), "role": "member", "expires_in_days": days},
            headers=tenant_a.headers,
        )
        assert response.status_code == 422, days


async def test_invitation_body_naming_a_tenant_is_rejected(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before = await snapshot_rows(admin_engine, "invitations", tenant_b.id)
    response = await client.post(
        "/v1/invitations",
        json={"email": new_email(), "role": "member", "tenant_id": str(tenant_b.id)},
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    assert "tenant_id" in response.text
    assert await snapshot_rows(admin_engine, "invitations", tenant_b.id) == before
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == []


async def test_only_an_owner_may_invite_an_owner(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    admin = await join(client, tenant_a, "admin")
    before = await snapshot_rows(admin_engine, "invitations", tenant_a.id)

    refused = await client.post("/v1/invitations", json={"email": new_email(), "role": "owner"}, headers=admin.headers)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/owner-required")
    assert "X-Accepted-Permissions" not in refused.headers
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == before

    assert (await invite(client, admin.headers, new_email(), "admin"))["role"] == "admin"
    assert (await invite(client, tenant_a.headers, new_email(), "owner"))["role"] == "owner"


async def test_inviting_needs_members_write(client: Client, tenant_a: Tenant) -> None:
    viewer = await join(client, tenant_a, "viewer")
    response = await client.post(
        "/v1/invitations", json={"email": new_email(), "role": "viewer"}, headers=viewer.headers
    )
    assert response.status_code == 403
    assert response.headers["X-Accepted-Permissions"] == "members=write"
    assert (await client.get("/v1/invitations", headers=viewer.headers)).status_code == 200


async def test_inviting_a_current_member_is_a_conflict(client: Client, tenant_a: Tenant) -> None:
    member = await join(client, tenant_a)
    response = await client.post(
        "/v1/invitations", json={"email": member.email.upper(), "role": "admin"}, headers=tenant_a.headers
    )
    assert response.status_code == 409


# -- accepting --------------------------------------------------------------------------------


async def test_accepting_creates_the_membership_and_a_first_token(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    email = new_email("Ada")
    invitation = await invite(client, tenant_a.headers, email, "admin")
    response = await client.post(
        "/v1/invitations/accept",
        json={"token": invitation["token"], "password": PASSWORD, "display_name": "Ada Lovelace"},
    )
    assert response.status_code == 201, response.text
    accepted = response.json()
    member, token = accepted["member"], accepted["token"]
    assert member["email"] == email
    assert member["role"] == "admin"
    assert member["display_name"] == "Ada Lovelace"
    assert member["is_active"] is True
    assert token["permissions"] == role_permissions("admin")
    lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=89) < lifetime <= timedelta(days=90)

    me = await client.get("/v1/members/me", headers={"Authorization": f"Bearer {token['token']}"})
    assert me.status_code == 200
    assert me.json() == member

    row = await invitation_row(admin_engine, tenant_a.id, invitation["id"])
    assert row["status"] == "accepted"
    assert row["accepted_at"] is not None
    assert str(row["accepted_member_id"]) == member["id"]
    fetched = (await client.get(f"/v1/invitations/{invitation['id']}", headers=tenant_a.headers)).json()
    assert fetched["status"] == "accepted"
    assert fetched["accepted_member_id"] == member["id"]

    events = [e for e in await audit_actions(admin_engine, tenant_a.id) if e["action"] == "invitation.accepted"]
    assert len(events) == 1
    assert events[0]["target_id"] == invitation["id"]
    assert str(events[0]["actor_member_id"]) == member["id"]
    assert events[0]["actor_type"] == "member"


async def test_accepted_token_respects_the_workspace_lifetime_cap(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET max_token_lifetime_days = 10 WHERE id = :id"), {"id": tenant_a.id}
        )
    invitation = await invite(client, tenant_a.headers, new_email())
    response = await client.post("/v1/invitations/accept", json={"token": invitation["token"], "password": PASSWORD})
    assert response.status_code == 201
    lifetime = datetime.fromisoformat(response.json()["token"]["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=9) < lifetime <= timedelta(days=10)


async def test_unusable_invitations_all_get_the_same_410(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    expired = await invite(client, tenant_a.headers, new_email())
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.invitations SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": uuid.UUID(str(expired["id"]))},
        )
    revoked = await invite(client, tenant_a.headers, new_email())
    assert (await client.post(f"/v1/invitations/{revoked['id']}/revoke", headers=tenant_a.headers)).status_code == 200
    used = await invite(client, tenant_a.headers, new_email())
    first = await client.post("/v1/invitations/accept", json={"token": used["token"], "password": PASSWORD})
    assert first.status_code == 201
    unknown = generate_token(TEST_PEPPER, INVITATION_TOKEN_PREFIX).token
    tenant_token_shape = generate_token(TEST_PEPPER).token
    before_members = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    before_invitations = await snapshot_rows(admin_engine, "invitations", tenant_a.id)

    answers = []
    for token in (expired["token"], revoked["token"], used["token"], unknown, tenant_token_shape, "junk"):
        response = await client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
        answers.append((response.status_code, response.content))

    assert answers[0][0] == 410
    assert answers[0][1].decode().count("invitation-unavailable") == 1
    assert all(answer == answers[0] for answer in answers), answers
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before_members
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == before_invitations
    listed = (await client.get("/v1/invitations?status=expired", headers=tenant_a.headers)).json()["data"]
    assert [i["id"] for i in listed] == [expired["id"]]


async def test_a_new_account_needs_a_long_enough_password(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    invitation = await invite(client, tenant_a.headers, new_email())
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    for body in ({}, {"password": "x" * 11}):
        response = await client.post("/v1/invitations/accept", json={"token": invitation["token"], **body})
        assert response.status_code == 422, response.text
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"
    ok = await client.post("/v1/invitations/accept", json={"token": invitation["token"], "password": "x" * 12})
    assert ok.status_code == 201


async def test_existing_account_must_give_its_password(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    elsewhere = await join(client, tenant_b, email=new_email("ada"))
    invitation = await invite(client, tenant_a.headers, elsewhere.email.upper(), "viewer")
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)

    for body in ({"password": "not the right password"}, {}):
        wrong = await client.post("/v1/invitations/accept", json={"token": invitation["token"], **body})
        assert wrong.status_code == 401
        assert wrong.json()["type"].endswith("/invalid-credentials")
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"

    right = await client.post("/v1/invitations/accept", json={"token": invitation["token"], "password": PASSWORD})
    assert right.status_code == 201
    assert right.json()["member"]["user_id"] == elsewhere.member["user_id"]
    assert right.json()["member"]["role"] == "viewer"


async def test_existing_account_without_password_joins_and_gets_no_password(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    async with admin_engine.connect() as connection:
        email = (
            await connection.execute(
                text("SELECT email FROM public.users WHERE id = :id"), {"id": tenant_b.workspace.owner_user_id}
            )
        ).scalar_one()
    invitation = await invite(client, tenant_a.headers, email)
    response = await client.post(
        "/v1/invitations/accept", json={"token": invitation["token"], "password": "chosen by whoever holds it"}
    )
    assert response.status_code == 201
    assert response.json()["member"]["user_id"] == str(tenant_b.workspace.owner_user_id)
    async with admin_engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT password_hash FROM public.users WHERE id = :id"), {"id": tenant_b.workspace.owner_user_id}
            )
        ).scalar_one()
    assert stored is None


async def test_accepting_twice_for_one_account_is_a_conflict(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    email = new_email()
    first = await invite(client, tenant_a.headers, email)
    second = await invite(client, tenant_a.headers, email, "admin")
    assert (
        await client.post("/v1/invitations/accept", json={"token": first["token"], "password": PASSWORD})
    ).status_code == 201
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    again = await client.post("/v1/invitations/accept", json={"token": second["token"], "password": PASSWORD})
    assert again.status_code == 409
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    assert (await invitation_row(admin_engine, tenant_a.id, second["id"]))["status"] == "pending"


async def test_accepting_into_a_suspended_workspace_is_refused(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    invitation = await invite(client, tenant_a.headers, new_email())
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET status = 'suspended' WHERE id = :id"), {"id": tenant_a.id}
        )
    response = await client.post("/v1/invitations/accept", json={"token": invitation["token"], "password": PASSWORD})
    middleware = await client.get("/v1/products", headers=tenant_a.headers)
    assert response.status_code == 403
    assert (response.status_code, response.content) == (middleware.status_code, middleware.content)
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"


# -- revoking and listing ---------------------------------------------------------------------


async def test_only_pending_invitations_can_be_revoked(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    pending = await invite(client, tenant_a.headers, new_email())
    revoked = await client.post(f"/v1/invitations/{pending['id']}/revoke", headers=tenant_a.headers)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    assert (await client.post(f"/v1/invitations/{pending['id']}/revoke", headers=tenant_a.headers)).status_code == 409

    used = await invite(client, tenant_a.headers, new_email())
    await client.post("/v1/invitations/accept", json={"token": used["token"], "password": PASSWORD})
    before = await snapshot_rows(admin_engine, "invitations", tenant_a.id)
    assert (await client.post(f"/v1/invitations/{used['id']}/revoke", headers=tenant_a.headers)).status_code == 409
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == before

    actions = [e["action"] for e in await audit_actions(admin_engine, tenant_a.id)]
    assert actions.count("invitation.revoked") == 1
    assert actions.count("invitation.created") == 2


async def test_list_filters_by_status_and_paginates(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    ids = {}
    for status in ("pending", "expired", "revoked", "accepted"):
        ids[status] = str((await invite(client, tenant_a.headers, new_email()))["id"])
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.invitations SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": uuid.UUID(ids["expired"])},
        )
    await client.post(f"/v1/invitations/{ids['revoked']}/revoke", headers=tenant_a.headers)
    accepted = (await client.get(f"/v1/invitations/{ids['accepted']}", headers=tenant_a.headers)).json()
    assert accepted["status"] == "pending"
    async with admin_engine.begin() as connection:  # accept without the token: only the status matters here
        await connection.execute(
            text("UPDATE public.invitations SET status = 'accepted', accepted_at = now() WHERE id = :id"),
            {"id": uuid.UUID(ids["accepted"])},
        )

    for status, invitation_id in ids.items():
        listed = (await client.get(f"/v1/invitations?status={status}", headers=tenant_a.headers)).json()
        assert [i["id"] for i in listed["data"]] == [invitation_id], status
        assert listed["data"][0]["status"] == status
    assert (await client.get("/v1/invitations?status=bogus", headers=tenant_a.headers)).status_code == 400

    seen, cursor = [], None
    while True:
        query = "/v1/invitations?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=tenant_a.headers)).json()
        seen += [i["id"] for i in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(ids.values())
    assert len(seen) == 4
    first = (await client.get("/v1/invitations?limit=1", headers=tenant_a.headers)).json()
    wrong_filter = await client.get(
        f"/v1/invitations?limit=1&status=pending&cursor={first['next_cursor']}", headers=tenant_a.headers
    )
    assert wrong_filter.status_code == 400


# -- other workspaces -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/revoke")])
async def test_other_workspace_invitation_answers_like_a_random_id(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant, method: str, suffix: str
) -> None:
    foreign_invitation = await invite(client, tenant_b.headers, new_email())
    before = await snapshot_rows(admin_engine, "invitations", tenant_b.id)

    foreign = await client.request(
        method, f"/v1/invitations/{foreign_invitation['id']}{suffix}", headers=tenant_a.headers
    )
    random = await client.request(method, f"/v1/invitations/{uuid.uuid4()}{suffix}", headers=tenant_a.headers)

    assert foreign.status_code == 404
    assert (foreign.status_code, foreign.content) == (random.status_code, random.content)
    assert await snapshot_rows(admin_engine, "invitations", tenant_b.id) == before


async def test_list_shows_only_own_invitations(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await invite(client, tenant_a.headers, new_email())
    foreign = await invite(client, tenant_b.headers, new_email())
    listed = (await client.get("/v1/invitations?limit=100", headers=tenant_a.headers)).json()["data"]
    assert [i["id"] for i in listed] == [own["id"]]
    assert foreign["id"] not in str(listed)
