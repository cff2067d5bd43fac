"""Invitations: hashed tokens, expiry, one 410 for every unusable token, accepting creates the member.

Accepting takes no password and never touches one (the inviter holds the token too), answers alike
whether the email had an account, and needs an inviter who may still grant the invited role.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.permissions import role_permissions
from tenantry.auth.tokens import INVITATION_TOKEN_PREFIX, generate_token
from tests.support import (
    ACCEPT,
    PASSWORD,
    TEST_PEPPER,
    Tenant,
    invite,
    join,
    new_email,
    set_password,
    snapshot_rows,
    workspace_audit,
)

Client = AsyncTestClient[Litestar]
LOGIN = "/v1/auth/token"
MEMBER_FIELDS = {"id", "email", "display_name", "role", "is_active", "created_at", "updated_at"}


async def user_row(admin_engine: AsyncEngine, email: str) -> dict[str, object] | None:
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT u.*, u::text AS as_text FROM public.users AS u WHERE lower(email) = lower(:e)"),
                {"e": email},
            )
        ).first()
    return dict(row._mapping) if row else None


async def accept(client: Client, token: object, **fields: object) -> httpx.Response:
    return await client.post(ACCEPT, json={"token": token, **fields})


async def invitation_row(admin_engine: AsyncEngine, tenant_id: uuid.UUID, invitation_id: object) -> dict[str, object]:
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT i.*, i::text AS as_text FROM public.invitations AS i WHERE tenant_id = :t AND id = :id"),
                {"t": tenant_id, "id": uuid.UUID(str(invitation_id))},
            )
        ).one()
    return dict(row._mapping)


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
    response = await accept(client, invitation["token"], display_name="Ada Lovelace")
    assert response.status_code == 201, response.text
    accepted = response.json()
    member, token = accepted["member"], accepted["token"]
    assert set(accepted) == {"member", "token"}
    assert set(member) == MEMBER_FIELDS
    assert response.headers["Location"] == f"/v1/members/{member['id']}"
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

    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "invitation.accepted"]
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
    response = await accept(client, invitation["token"])
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
    first = await accept(client, used["token"])
    assert first.status_code == 201
    unknown = generate_token(TEST_PEPPER, INVITATION_TOKEN_PREFIX).token
    tenant_token_shape = generate_token(TEST_PEPPER).token
    before_members = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    before_invitations = await snapshot_rows(admin_engine, "invitations", tenant_a.id)

    answers = []
    for token in (expired["token"], revoked["token"], used["token"], unknown, tenant_token_shape, "junk"):
        response = await accept(client, token)
        answers.append((response.status_code, response.content))

    assert answers[0][0] == 410
    assert answers[0][1].decode().count("invitation-unavailable") == 1
    assert all(answer == answers[0] for answer in answers), answers
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before_members
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == before_invitations
    listed = (await client.get("/v1/invitations?status=expired", headers=tenant_a.headers)).json()["data"]
    assert [i["id"] for i in listed] == [expired["id"]]


async def test_accept_takes_no_password_and_a_body_with_one_is_rejected(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    email = new_email("fresh")
    invitation = await invite(client, tenant_a.headers, email)
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    for extra in ({"password": PASSWORD}, {"password": None}, {"tenant_id": str(tenant_a.id)}):
        response = await accept(client, invitation["token"], **extra)
        assert response.status_code == 422, response.text
        assert next(iter(extra)) in response.text
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == before
    assert await user_row(admin_engine, email) is None
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"

    ok = await accept(client, invitation["token"])
    assert ok.status_code == 201, ok.text
    created = await user_row(admin_engine, email)
    assert created is not None
    assert created["password_hash"] is None


async def account(
    client: Client, admin_engine: AsyncEngine, tenant_b: Tenant, kind: str
) -> tuple[str, dict[str, object] | None]:
    """An email with no account, with an account without a password, or with one with a password."""
    email = new_email(kind.replace(" ", "-"))
    if kind != "no account":
        await join(client, tenant_b, email=email, password=PASSWORD if kind == "with password" else None)
    return email, await user_row(admin_engine, email)


async def test_accept_answers_alike_whatever_account_the_email_has_and_never_touches_it(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    answers: dict[str, httpx.Response] = {}
    users: dict[str, tuple[dict[str, object] | None, dict[str, object] | None]] = {}
    for kind in ("no account", "without password", "with password"):
        email, before = await account(client, admin_engine, tenant_b, kind)
        invitation = await invite(client, tenant_a.headers, email.upper(), "viewer")
        # Whatever the caller might send along, only the token and the display name are taken.
        answers[kind] = await accept(client, invitation["token"], display_name=kind)
        users[kind] = (before, await user_row(admin_engine, email))

    for kind, response in answers.items():
        assert response.status_code == 201, (kind, response.text)
        body = response.json()
        assert set(body) == {"member", "token"}, kind
        assert set(body["member"]) == MEMBER_FIELDS, kind
        assert set(body["token"]) == {"token", "token_id", "expires_at", "permissions"}, kind
        assert body["member"]["role"] == "viewer"
        assert body["member"]["display_name"] == kind
        assert set(response.headers.keys()) == set(answers["no account"].headers.keys()), kind

    before, after = users["no account"]
    assert before is None
    assert after is not None
    assert after["password_hash"] is None
    for kind in ("without password", "with password"):
        before, after = users[kind]
        assert before is not None
        assert after == before, kind  # the account is linked, not written: same row, same hash
    assert users["without password"][1]["password_hash"] is None  # type: ignore[index]
    assert users["with password"][1]["password_hash"] is not None  # type: ignore[index]

    # The workspace's own log does not tell the cases apart either.
    accepted = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "invitation.accepted"]
    assert len(accepted) == 3
    assert {frozenset(e["details"]) for e in accepted} == {frozenset({"member_id", "role", "token_id"})}


async def test_an_existing_account_keeps_its_password_and_joins_through_the_invitation(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    elsewhere = await join(client, tenant_b, email=new_email("ada"))
    invitation = await invite(client, tenant_a.headers, elsewhere.email.upper(), "viewer")
    joined = await accept(client, invitation["token"])
    assert joined.status_code == 201

    async with admin_engine.connect() as connection:
        users = (
            await connection.execute(
                text(
                    "SELECT DISTINCT m.user_id FROM public.memberships AS m WHERE (m.tenant_id, m.id) IN "
                    "((:a, :ma), (:b, :mb))"
                ),
                {
                    "a": tenant_a.id,
                    "ma": uuid.UUID(joined.json()["member"]["id"]),
                    "b": tenant_b.id,
                    "mb": uuid.UUID(elsewhere.id),
                },
            )
        ).all()
    assert len(users) == 1  # one account, two memberships
    # The password a platform admin set still signs in, now to either workspace.
    for tenant in (tenant_a, tenant_b):
        login = await client.post(
            LOGIN, json={"email": elsewhere.email, "password": PASSWORD, "workspace": tenant.workspace.slug}
        )
        assert login.status_code == 201, (tenant.workspace.slug, login.text)


async def test_accepting_twice_for_one_account_is_a_conflict(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    email = new_email()
    first = await invite(client, tenant_a.headers, email)
    second = await invite(client, tenant_a.headers, email, "admin")
    assert (await accept(client, first["token"])).status_code == 201
    before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    again = await accept(client, second["token"])
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
    response = await accept(client, invitation["token"])
    middleware = await client.get("/v1/products", headers=tenant_a.headers)
    assert response.status_code == 403
    assert (response.status_code, response.content) == (middleware.status_code, middleware.content)
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"


async def test_an_inviter_cannot_pre_hijack_an_account_for_a_workspace_provisioned_later(
    client: Client, admin_engine: AsyncEngine, admin_headers: dict[str, str], tenant_a: Tenant
) -> None:
    """The review's H1: invite someone's email, accept it yourself, leave; they get a workspace later."""
    victim = new_email("ceo")
    attacker_password = "the attacker's own password"
    invitation = await invite(client, tenant_a.headers, victim, "viewer")
    choosing = await accept(client, invitation["token"], password=attacker_password)
    assert choosing.status_code == 422  # no password can be chosen at accept
    accepted = await accept(client, invitation["token"])
    assert accepted.status_code == 201
    removed = await client.delete(f"/v1/members/{accepted.json()['member']['id']}", headers=tenant_a.headers)
    assert removed.status_code == 204
    left_behind = await user_row(admin_engine, victim)
    assert left_behind is not None
    assert left_behind["password_hash"] is None

    slug = f"victim-{uuid.uuid4().hex[:12]}"
    provisioned = await client.post(
        "/admin/v1/workspaces", json={"slug": slug, "name": "Victim Inc", "owner_email": victim}, headers=admin_headers
    )
    assert provisioned.status_code == 201, provisioned.text
    assert provisioned.json()["owner"]["user_created"] is False  # the account accept made is reused
    assert provisioned.json()["owner"]["user_id"] == str(left_behind["id"])

    for guess in (attacker_password, PASSWORD, "x"):
        login = await client.post(LOGIN, json={"email": victim, "password": guess, "workspace": slug})
        assert login.status_code == 401, (guess, login.text)
        assert login.json()["type"].endswith("/invalid-credentials")
    assert (await user_row(admin_engine, victim))["password_hash"] is None  # type: ignore[index]

    # Only a password a platform admin sets opens it, and the attacker's still does not.
    await set_password(client.app.state.settings, victim, PASSWORD)
    wrong = await client.post(LOGIN, json={"email": victim, "password": attacker_password, "workspace": slug})
    right = await client.post(LOGIN, json={"email": victim, "password": PASSWORD, "workspace": slug})
    assert wrong.status_code == 401
    assert right.status_code == 201, right.text
    me = await client.get("/v1/members/me", headers={"Authorization": f"Bearer {right.json()['token']}"})
    assert me.json()["id"] == provisioned.json()["owner"]["membership_id"]
    assert me.json()["role"] == "owner"


async def test_member_answers_never_carry_the_global_user_id(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    email = new_email("private")
    invitation = await invite(client, tenant_a.headers, email, "admin")
    accepted = await accept(client, invitation["token"])
    assert accepted.status_code == 201
    member = accepted.json()["member"]
    headers = {"Authorization": f"Bearer {accepted.json()['token']['token']}"}
    user = await user_row(admin_engine, email)
    assert user is not None
    user_id = str(user["id"])

    answers = [
        accepted,
        await client.get("/v1/members?limit=100", headers=tenant_a.headers),
        await client.get(f"/v1/members/{member['id']}", headers=tenant_a.headers),
        await client.get("/v1/members/me", headers=headers),
        await client.get("/v1/whoami", headers=headers),
        await client.patch("/v1/members/me", json={"display_name": "Private"}, headers=headers),
        await client.patch(f"/v1/members/{member['id']}", json={"role": "member"}, headers=tenant_a.headers),
        await client.post(f"/v1/members/{member['id']}/deactivate", headers=tenant_a.headers),
        await client.post(f"/v1/members/{member['id']}/reactivate", headers=tenant_a.headers),
        await client.delete(f"/v1/members/{member['id']}", headers=tenant_a.headers),
    ]
    for response in answers:
        assert response.status_code in (200, 201, 204), response.text
        assert user_id not in response.text, response.request.url
        assert "user_id" not in response.text, response.request.url
    log = await client.get("/v1/audit-events?limit=100", headers=tenant_a.headers)
    assert log.status_code == 200
    assert user_id not in log.text
    # No event of the workspace's own log names a global user id, provisioning's included.
    ours = log.json()["data"]
    assert {e["action"] for e in ours} >= {
        "workspace.created",
        "invitation.accepted",
        "member.removed",
        "member.deactivated",
    }
    assert "user_id" not in str(ours)
    assert "user_created" not in str(ours)
    for response in answers[1:4]:
        body = response.json()
        for shown in body.get("data", [body]):
            assert set(shown) == MEMBER_FIELDS

    removed = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "member.removed"]
    assert [e["target_id"] for e in removed] == [member["id"]]
    assert removed[0]["details"] == {"email": email, "role": "member"}


# -- the inviter's authority ------------------------------------------------------------------


async def revoked_events(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, dict[str, object]]:
    return {
        str(e["target_id"]): dict(e)
        for e in await workspace_audit(admin_engine, tenant_id)
        if e["action"] == "invitation.revoked"
    }


async def test_a_demoted_owner_s_owner_invitation_is_revoked_and_unusable(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    second = await join(client, tenant_a, "owner")
    as_owner = await invite(client, second.headers, new_email("owner"), "owner")
    as_admin = await invite(client, second.headers, new_email("admin"), "admin")
    foreign = await invite(client, tenant_b.headers, new_email("b"), "owner")
    b_before = await snapshot_rows(admin_engine, "invitations", tenant_b.id)

    demoted = await client.patch(f"/v1/members/{second.id}", json={"role": "admin"}, headers=tenant_a.headers)
    assert demoted.status_code == 200

    revoked = await invitation_row(admin_engine, tenant_a.id, as_owner["id"])
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"] is not None
    events = await revoked_events(admin_engine, tenant_a.id)
    assert set(events) == {as_owner["id"]}  # an admin may still invite an admin: that one stays
    assert events[as_owner["id"]]["details"] == {"reason": "inviter_demoted"}
    assert str(events[as_owner["id"]]["actor_member_id"]) == str(tenant_a.workspace.owner_membership_id)
    listed = (await client.get(f"/v1/invitations/{as_owner['id']}", headers=tenant_a.headers)).json()
    assert listed["status"] == "revoked"

    unusable = await accept(client, as_owner["token"])
    unknown = await accept(client, generate_token(TEST_PEPPER, INVITATION_TOKEN_PREFIX).token)
    assert unusable.status_code == 410
    assert (unusable.status_code, unusable.content) == (unknown.status_code, unknown.content)
    assert (await accept(client, as_admin["token"])).status_code == 201
    assert await snapshot_rows(admin_engine, "invitations", tenant_b.id) == b_before
    assert (await accept(client, foreign["token"])).status_code == 201


async def test_an_admin_demoted_to_member_loses_every_pending_invitation(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    admin = await join(client, tenant_a, "admin")
    invitations = [await invite(client, admin.headers, new_email(role), role) for role in ("member", "viewer")]
    owner_s = await invite(client, tenant_a.headers, new_email("kept"), "member")

    demoted = await client.patch(f"/v1/members/{admin.id}", json={"role": "member"}, headers=tenant_a.headers)
    assert demoted.status_code == 200

    events = await revoked_events(admin_engine, tenant_a.id)
    assert set(events) == {i["id"] for i in invitations}
    assert all(e["details"] == {"reason": "inviter_demoted"} for e in events.values())
    for invitation in invitations:
        assert (await accept(client, invitation["token"])).status_code == 410
    # Promoting the member back does not bring them back.
    await client.patch(f"/v1/members/{admin.id}", json={"role": "admin"}, headers=tenant_a.headers)
    assert (await accept(client, invitations[0]["token"])).status_code == 410
    assert (await accept(client, owner_s["token"])).status_code == 201  # someone else's: untouched


@pytest.mark.parametrize("change", ["deactivate", "remove"])
async def test_a_deactivated_or_removed_inviter_s_invitations_are_revoked(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, change: str
) -> None:
    admin = await join(client, tenant_a, "admin")
    invitation = await invite(client, admin.headers, new_email(), "viewer")
    expired = await invite(client, admin.headers, new_email(), "viewer")
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.invitations SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": uuid.UUID(str(expired["id"]))},
        )

    if change == "deactivate":
        response = await client.post(f"/v1/members/{admin.id}/deactivate", headers=tenant_a.headers)
    else:
        response = await client.delete(f"/v1/members/{admin.id}", headers=tenant_a.headers)
    assert response.status_code in (200, 204)

    events = await revoked_events(admin_engine, tenant_a.id)
    assert set(events) == {invitation["id"]}  # an expired one stays expired
    assert events[invitation["id"]]["details"] == {"reason": f"inviter_{change}d"}
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "revoked"
    assert (await invitation_row(admin_engine, tenant_a.id, expired["id"]))["status"] == "pending"
    assert (await accept(client, invitation["token"])).status_code == 410
    if change == "deactivate":  # reactivation does not revive it
        assert (await client.post(f"/v1/members/{admin.id}/reactivate", headers=tenant_a.headers)).status_code == 200
        assert (await accept(client, invitation["token"])).status_code == 410


@pytest.mark.parametrize(
    ("inviter_role", "invited_role", "change"),
    [
        ("owner", "owner", "role = 'admin'"),
        ("admin", "member", "role = 'member'"),
        ("admin", "viewer", "role = 'viewer'"),
        ("admin", "viewer", "is_active = false"),
        ("admin", "viewer", "removed"),
    ],
)
async def test_accept_rechecks_the_inviter_even_when_the_invitation_is_still_pending(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    inviter_role: str,
    invited_role: str,
    change: str,
) -> None:
    """The inviter's authority is read at accept, not trusted from when the invitation was made.

    The change is made behind the API's back, so the invitation is still pending: only the check
    at accept stands between it and a new member.
    """
    inviter = await join(client, tenant_a, inviter_role)
    invitation = await invite(client, inviter.headers, new_email(), invited_role)
    async with admin_engine.begin() as connection:
        if change == "removed":
            await connection.execute(
                text("DELETE FROM public.memberships WHERE tenant_id = :t AND id = :m"),
                {"t": tenant_a.id, "m": uuid.UUID(inviter.id)},
            )
        else:
            await connection.execute(
                text(f"UPDATE public.memberships SET {change} WHERE tenant_id = :t AND id = :m"),
                {"t": tenant_a.id, "m": uuid.UUID(inviter.id)},
            )
    members_before = await snapshot_rows(admin_engine, "memberships", tenant_a.id)
    invitations_before = await snapshot_rows(admin_engine, "invitations", tenant_a.id)

    refused = await accept(client, invitation["token"])
    unknown = await accept(client, generate_token(TEST_PEPPER, INVITATION_TOKEN_PREFIX).token)

    assert refused.status_code == 410
    assert (refused.status_code, refused.content) == (unknown.status_code, unknown.content)
    assert (await invitation_row(admin_engine, tenant_a.id, invitation["id"]))["status"] == "pending"
    assert await snapshot_rows(admin_engine, "memberships", tenant_a.id) == members_before
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == invitations_before
    assert await user_row(admin_engine, str(invitation["email"])) is None


async def test_an_inviter_who_still_may_grant_the_role_keeps_the_invitation_usable(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    """The other side of the checks above: a promotion or an unrelated change revokes nothing."""
    admin = await join(client, tenant_a, "admin")
    invitation = await invite(client, admin.headers, new_email(), "admin")
    for body in ({"role": "owner"}, {"display_name": "Renamed"}, {"role": "admin"}):
        assert (await client.patch(f"/v1/members/{admin.id}", json=body, headers=tenant_a.headers)).status_code == 200
    assert await revoked_events(admin_engine, tenant_a.id) == {}
    assert (await accept(client, invitation["token"])).status_code == 201


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
    assert (await accept(client, used["token"])).status_code == 201
    before = await snapshot_rows(admin_engine, "invitations", tenant_a.id)
    assert (await client.post(f"/v1/invitations/{used['id']}/revoke", headers=tenant_a.headers)).status_code == 409
    assert await snapshot_rows(admin_engine, "invitations", tenant_a.id) == before

    actions = [e["action"] for e in await workspace_audit(admin_engine, tenant_a.id)]
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
# Another workspace's ids on every route that takes one: tests/isolation/test_foreign_ids.py.


async def test_list_shows_only_own_invitations(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await invite(client, tenant_a.headers, new_email())
    foreign = await invite(client, tenant_b.headers, new_email())
    listed = (await client.get("/v1/invitations?limit=100", headers=tenant_a.headers)).json()["data"]
    assert [i["id"] for i in listed] == [own["id"]]
    assert foreign["id"] not in str(listed)
