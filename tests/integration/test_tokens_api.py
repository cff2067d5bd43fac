"""/v1/tokens on real PostgreSQL: create, list, get, revoke, rotate (grace, reuse detection), leak report."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import tenantry.tokens.service as token_service_module
from tenantry.auth.permissions import role_permissions
from tenantry.auth.tokens import generate_token
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import TEST_PEPPER, Tenant, as_tenant, snapshot_rows, workspace_audit

Client = AsyncTestClient[Litestar]

VIEW_FIELDS = {
    "id",
    "name",
    "display_prefix",
    "last_four",
    "permissions",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "rotated_at",
    "replaced_by_id",
}


@dataclass
class Member:
    membership_id: uuid.UUID
    token: str
    token_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def add_member(
    admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, provisioning: ProvisioningService
):  # type: ignore[no-untyped-def]
    """A new user joins `tenant` with `role` (user row as the privileged account, membership as the tenant)."""

    async def add(tenant: Tenant, role: str = "member", permissions: dict[str, str] | None = None) -> Member:
        user_id, membership_id = uuid.uuid4(), uuid.uuid4()
        async with admin_engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO public.users (id, email) VALUES (:id, :email)"),
                {"id": user_id, "email": f"{role}-{user_id.hex[:12]}@example.com"},
            )
        async with app_engine.begin() as connection:
            await as_tenant(connection, settings, tenant.id)
            await connection.execute(
                text("INSERT INTO public.memberships (tenant_id, id, user_id, role) VALUES (:t, :id, :u, :r)"),
                {"t": tenant.id, "id": membership_id, "u": user_id, "r": role},
            )
        issued, token_id = await provisioning.issue_token(
            tenant.id, membership_id, name=f"{role} token", permissions=permissions or role_permissions(role)
        )
        return Member(membership_id, issued.token, token_id)

    return add


async def create_token(client: Client, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await client.post("/v1/tokens", json={"name": "ci", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def token_row(admin_engine: AsyncEngine, token_id: object) -> dict[str, object]:
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT * FROM public.personal_access_tokens WHERE id = :id"), {"id": token_id}
            )
        ).one()
    return dict(row._mapping)


async def set_expiry_in_past(admin_engine: AsyncEngine, token_id: object) -> None:
    """Make a grace period (or a lifetime) end now, without waiting for it."""
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.personal_access_tokens SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": token_id},
        )


async def set_max_lifetime(admin_engine: AsyncEngine, tenant: Tenant, days: int) -> None:
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET max_token_lifetime_days = :d WHERE id = :id"),
            {"d": days, "id": tenant.id},
        )


async def works(client: Client, token: str) -> int:
    return (await client.get("/v1/products", headers=bearer(token))).status_code


async def used(client: Client, headers: dict[str, str]) -> None:
    """Use a token once, so its first-use last_used_at stamp happens before a snapshot, not during it."""
    assert (await client.get("/v1/tokens", headers=headers)).status_code == 200


async def audit_actions(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> list[tuple[str, str | None, str]]:
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT action, target_id, actor_type FROM public.audit_events WHERE tenant_id = :t ORDER BY id"),
            {"t": tenant_id},
        )
        return [(r.action, r.target_id, r.actor_type) for r in rows]


# --- create, view, list ---------------------------------------------------------------------------


async def test_created_token_is_shown_once_and_works(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_token(client, tenant_a.headers, name="deploy")
    clear = str(created["token"])
    assert clear.startswith("tnt_")
    assert set(created) == VIEW_FIELDS | {"token", "replayed"}
    assert created["replayed"] is False
    assert created["display_prefix"] == clear[:8]
    assert created["last_four"] == clear[-4:]
    assert created["permissions"] == role_permissions("owner")
    assert when(str(created["expires_at"])) - when(str(created["created_at"])) == timedelta(days=90)
    assert await works(client, clear) == 200

    fetched = await client.get(f"/v1/tokens/{created['id']}", headers=tenant_a.headers)
    assert fetched.status_code == 200
    assert set(fetched.json()) == VIEW_FIELDS
    assert clear not in fetched.text
    assert ("token.created", str(created["id"]), "member") in await audit_actions(admin_engine, tenant_a.id)


async def test_token_list_never_contains_the_secret_or_digest(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_token(client, tenant_a.headers)
    digest: bytes = (await token_row(admin_engine, created["id"]))["token_digest"]  # type: ignore[assignment]
    response = await client.get("/v1/tokens?include_revoked=true", headers=tenant_a.headers)
    assert response.status_code == 200
    listed = response.json()["data"]
    assert {t["id"] for t in listed} >= {created["id"], str(tenant_a.workspace.token_id)}
    for item in listed:
        assert set(item) == VIEW_FIELDS
    for secret in (str(created["token"]), tenant_a.token, digest.hex()):
        assert secret not in response.text
    assert "digest" not in response.text


async def test_list_is_newest_first_with_cursor_pagination_and_hides_revoked_by_default(
    client: Client, tenant_a: Tenant
) -> None:
    made = [await create_token(client, tenant_a.headers, name=f"t{i}") for i in range(5)]
    revoked = made[2]
    assert (await client.delete(f"/v1/tokens/{revoked['id']}", headers=tenant_a.headers)).status_code == 204

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/tokens", params=params, headers=tenant_a.headers)).json()
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    expected = [str(t["id"]) for t in reversed(made) if t is not revoked] + [str(tenant_a.workspace.token_id)]
    assert seen == expected

    everything = (await client.get("/v1/tokens?include_revoked=true&limit=100", headers=tenant_a.headers)).json()
    assert str(revoked["id"]) in [t["id"] for t in everything["data"]]
    # A cursor is bound to its query: reused with another filter it is refused.
    first = (await client.get("/v1/tokens?limit=1", headers=tenant_a.headers)).json()
    mismatched = await client.get(
        "/v1/tokens",
        params={"limit": 1, "cursor": first["next_cursor"], "include_revoked": "true"},
        headers=tenant_a.headers,
    )
    assert mismatched.status_code == 400


async def test_body_naming_a_tenant_or_unknown_permissions_is_rejected(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await used(client, tenant_a.headers)
    before_a = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    before_b = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id)
    for body, field in [
        ({"name": "x", "tenant_id": str(tenant_b.id)}, "tenant_id"),
        ({"name": "x", "permissions": {"billing": "read"}}, "permissions.billing"),
        ({"name": "x", "permissions": {"products": "admin"}}, "permissions.products"),
        ({"name": "", "permissions": {}}, "name"),
    ]:
        response = await client.post("/v1/tokens", json=body, headers=tenant_a.headers)
        assert response.status_code == 422, body
        assert field in response.text
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before_a
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id) == before_b


# --- expiry ---------------------------------------------------------------------------------------


async def test_expiry_defaults_to_90_days_and_the_workspace_maximum_caps_it(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    too_long = await client.post("/v1/tokens", json={"name": "x", "expires_in_days": 367}, headers=tenant_a.headers)
    assert too_long.status_code == 422
    assert "expires_in_days" in too_long.text

    await set_max_lifetime(admin_engine, tenant_a, 30)
    await used(client, tenant_a.headers)
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    over = await client.post("/v1/tokens", json={"name": "x", "expires_in_days": 31}, headers=tenant_a.headers)
    assert over.status_code == 422
    assert over.json()["errors"] == [{"field": "expires_in_days", "message": "must be at most 30"}]
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before

    at_max = await create_token(client, tenant_a.headers, expires_in_days=30)
    assert when(str(at_max["expires_at"])) - when(str(at_max["created_at"])) == timedelta(days=30)
    # With no lifetime asked for, the default shrinks to the workspace maximum.
    default = await create_token(client, tenant_a.headers)
    assert when(str(default["expires_at"])) - when(str(default["created_at"])) == timedelta(days=30)


# --- permissions ----------------------------------------------------------------------------------


async def test_permission_escalation_is_refused_with_403_naming_the_permission(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    narrow, _ = await provisioning.issue_token(
        tenant_a.id,
        tenant_a.workspace.owner_membership_id,
        name="narrow",
        permissions={"products": "read", "tokens": "write"},
    )
    await used(client, bearer(narrow.token))
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    refused = await client.post(
        "/v1/tokens", json={"name": "wider", "permissions": {"products": "write"}}, headers=bearer(narrow.token)
    )
    assert refused.status_code == 403
    assert refused.headers["x-accepted-permissions"] == "products=write"
    assert "products:write" in refused.json()["detail"]
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before

    # Within its own levels it may mint, and by default it copies exactly what it can do.
    same = await create_token(client, bearer(narrow.token))
    assert same["permissions"] == {
        "products": "read",
        "members": "none",
        "tokens": "write",
        "audit_events": "none",
        "lookups": "none",
        "orders": "none",
    }
    narrower = await create_token(client, bearer(narrow.token), permissions={"products": "read"})
    assert narrower["permissions"] == {
        "products": "read",
        "members": "none",
        "tokens": "none",
        "audit_events": "none",
        "lookups": "none",
        "orders": "none",
    }


async def test_read_only_token_cannot_change_tokens(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    reader, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="reader", permissions={"tokens": "read"}
    )
    await used(client, bearer(reader.token))
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    target = tenant_a.workspace.token_id
    for method, path in [
        ("POST", "/v1/tokens"),
        ("DELETE", f"/v1/tokens/{target}"),
        ("POST", f"/v1/tokens/{target}/rotate"),
    ]:
        body = {"json": {"name": "x"}} if path == "/v1/tokens" else {}
        response = await client.request(method, path, headers=bearer(reader.token), **body)  # type: ignore[arg-type]
        assert response.status_code == 403, path
        assert response.headers["x-accepted-permissions"] == "tokens=write"
    assert (await client.get("/v1/tokens", headers=bearer(reader.token))).status_code == 200
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before


async def test_rotation_cannot_hand_out_more_than_the_calling_token(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    """A tokens:write token with products:read must not obtain a products:write secret by rotating."""
    narrow, _ = await provisioning.issue_token(
        tenant_a.id,
        tenant_a.workspace.owner_membership_id,
        name="narrow",
        permissions={"products": "read", "tokens": "write"},
    )
    await used(client, bearer(narrow.token))
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    refused = await client.post(f"/v1/tokens/{tenant_a.workspace.token_id}/rotate", headers=bearer(narrow.token))
    assert refused.status_code == 403
    assert refused.headers["x-accepted-permissions"] == "products=write"
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before


# --- revocation -----------------------------------------------------------------------------------


async def test_revocation_is_effective_on_the_very_next_request(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    created = await create_token(client, tenant_a.headers)
    clear = str(created["token"])
    assert await works(client, clear) == 200
    assert (await client.delete(f"/v1/tokens/{created['id']}", headers=tenant_a.headers)).status_code == 204
    assert await works(client, clear) == 401
    row = await token_row(admin_engine, created["id"])
    assert row["revoked_at"] is not None
    assert ("token.revoked", str(created["id"]), "member") in await audit_actions(admin_engine, tenant_a.id)
    # Revoking again changes nothing and records nothing.
    events = await audit_actions(admin_engine, tenant_a.id)
    assert (await client.delete(f"/v1/tokens/{created['id']}", headers=tenant_a.headers)).status_code == 204
    assert await token_row(admin_engine, created["id"]) == row
    assert await audit_actions(admin_engine, tenant_a.id) == events


async def test_a_token_can_revoke_itself(client: Client, tenant_a: Tenant) -> None:
    created = await create_token(client, tenant_a.headers)
    own = bearer(str(created["token"]))
    assert (await client.delete(f"/v1/tokens/{created['id']}", headers=own)).status_code == 204
    assert (await client.get("/v1/tokens", headers=own)).status_code == 401


# --- rotation -------------------------------------------------------------------------------------


async def test_rotation_with_grace_keeps_both_tokens_working_then_only_the_new(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    old = await create_token(client, tenant_a.headers, name="ci", expires_in_days=10, permissions={"products": "read"})
    response = await client.post(
        f"/v1/tokens/{old['id']}/rotate", json={"grace_period_seconds": 3600}, headers=tenant_a.headers
    )
    assert response.status_code == 201, response.text
    new = response.json()
    assert set(new) == VIEW_FIELDS | {"token", "replayed"}
    assert new["token"] != old["token"]
    assert (new["name"], new["permissions"]) == (old["name"], old["permissions"])
    assert when(new["expires_at"]) - when(new["created_at"]) == timedelta(days=10)

    rotated = await token_row(admin_engine, old["id"])
    assert rotated["replaced_by_id"] == uuid.UUID(new["id"])
    assert rotated["rotated_at"] is not None
    assert rotated["expires_at"] == rotated["rotated_at"] + timedelta(seconds=3600)  # type: ignore[operator]
    assert ("token.rotated", str(old["id"]), "member") in await audit_actions(admin_engine, tenant_a.id)

    assert await works(client, str(old["token"])) == 200
    assert await works(client, new["token"]) == 200
    await set_expiry_in_past(admin_engine, old["id"])  # the grace period ends
    assert await works(client, new["token"]) == 200


async def test_rotation_with_zero_grace_stops_the_old_token_at_once(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    old = await create_token(client, tenant_a.headers)
    response = await client.post(f"/v1/tokens/{old['id']}/rotate", headers=tenant_a.headers)  # no body: grace 0
    assert response.status_code == 201, response.text
    new = response.json()
    assert await works(client, new["token"]) == 200
    assert await works(client, str(old["token"])) == 401
    row = await token_row(admin_engine, old["id"])
    assert row["expires_at"] == row["rotated_at"]


async def test_reusing_a_rotated_token_after_its_grace_revokes_the_replacement(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    old = await create_token(client, tenant_a.headers)
    new = (
        await client.post(
            f"/v1/tokens/{old['id']}/rotate", json={"grace_period_seconds": 600}, headers=tenant_a.headers
        )
    ).json()
    newest = (
        await client.post(
            f"/v1/tokens/{new['id']}/rotate", json={"grace_period_seconds": 600}, headers=tenant_a.headers
        )
    ).json()
    assert await works(client, newest["token"]) == 200
    await set_expiry_in_past(admin_engine, old["id"])

    assert await works(client, str(old["token"])) == 401  # presented after its grace: treated as stolen
    assert await works(client, newest["token"]) == 401  # the whole chain of replacements is revoked
    assert await works(client, new["token"]) == 401
    assert (await token_row(admin_engine, newest["id"]))["revoked_at"] is not None


async def test_reuse_detection_records_each_revocation_in_the_audit_log(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """Issue 14: revocations by reuse detection left no trace in the audit log. They are recorded
    with the revocation (one statement), one event per revoked token, in that workspace only."""
    old = await create_token(client, tenant_a.headers)
    new = (
        await client.post(
            f"/v1/tokens/{old['id']}/rotate", json={"grace_period_seconds": 600}, headers=tenant_a.headers
        )
    ).json()
    child = await create_token(client, bearer(new["token"]))  # minted with the replacement
    others_before = await workspace_audit(admin_engine, tenant_b.id)
    await set_expiry_in_past(admin_engine, old["id"])

    assert await works(client, str(old["token"])) == 401
    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "token.reuse_detected"]
    assert sorted(e["target_id"] for e in events) == sorted([old["id"], new["id"], child["id"]])
    for event in events:
        assert event["actor_type"] == "system"
        assert event["target_type"] == "token"
        assert event["details"]["presented_token_id"] == old["id"]
        assert uuid.UUID(str(event["id"])).version == 7
    for token_id in (new["id"], child["id"]):
        assert (await token_row(admin_engine, token_id))["revoked_at"] is not None
    # Presented again, nothing more is revoked, so nothing more is recorded.
    assert await works(client, str(old["token"])) == 401
    again = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "token.reuse_detected"]
    assert len(again) == 3
    assert await workspace_audit(admin_engine, tenant_b.id) == others_before
    # The tenant sees them through its own API too.
    listed = await client.get("/v1/audit-events?action=token.reuse_detected", headers=tenant_a.headers)
    assert listed.status_code == 200
    assert len(listed.json()["data"]) == 3


@pytest.mark.parametrize("state", ["revoked", "expired", "rotated"])
async def test_only_a_live_unrotated_token_can_be_rotated(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, state: str
) -> None:
    token = await create_token(client, tenant_a.headers)
    if state == "revoked":
        await client.delete(f"/v1/tokens/{token['id']}", headers=tenant_a.headers)
    elif state == "expired":
        await set_expiry_in_past(admin_engine, token["id"])
    else:
        rotate = await client.post(
            f"/v1/tokens/{token['id']}/rotate", json={"grace_period_seconds": 60}, headers=tenant_a.headers
        )
        assert rotate.status_code == 201
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    response = await client.post(f"/v1/tokens/{token['id']}/rotate", headers=tenant_a.headers)
    assert response.status_code == 409
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before


async def test_rotation_caps_the_lifetime_at_the_workspace_maximum(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    old = await create_token(client, tenant_a.headers, expires_in_days=60)
    await set_max_lifetime(admin_engine, tenant_a, 20)
    new = (await client.post(f"/v1/tokens/{old['id']}/rotate", headers=tenant_a.headers)).json()
    assert when(new["expires_at"]) - when(new["created_at"]) == timedelta(days=20)


@pytest.mark.parametrize("grace", [-1, 604801, "soon"])
async def test_grace_period_out_of_range_is_422(client: Client, tenant_a: Tenant, grace: object) -> None:
    response = await client.post(
        f"/v1/tokens/{tenant_a.workspace.token_id}/rotate",
        json={"grace_period_seconds": grace},
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    assert "grace_period_seconds" in response.text


# --- last_used_at ---------------------------------------------------------------------------------


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_token(client, tenant_a.headers)
    assert created["last_used_at"] is None
    clear = str(created["token"])

    assert await works(client, clear) == 200
    first = (await token_row(admin_engine, created["id"]))["last_used_at"]
    assert first is not None
    assert await works(client, clear) == 200
    assert (await token_row(admin_engine, created["id"]))["last_used_at"] == first

    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE public.personal_access_tokens SET last_used_at = last_used_at - interval '61 seconds' "
                "WHERE id = :id"
            ),
            {"id": created["id"]},
        )
    # A minute has passed for the token; let it pass for the app's cache of verified tokens too, so
    # the next use is resolved (and stamped) in the database again.
    cache = client.app.state.principal_cache
    monkeypatch.setattr(cache, "clock", lambda: time.monotonic() + cache.ttl_s + 1)
    assert await works(client, clear) == 200
    third = (await token_row(admin_engine, created["id"]))["last_used_at"]
    assert third > first  # type: ignore[operator]
    shown = (await client.get(f"/v1/tokens/{created['id']}", headers=tenant_a.headers)).json()
    assert when(shown["last_used_at"]) == third


async def test_a_refused_use_leaves_last_used_at_alone(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    """A token of a suspended workspace is refused, and its row stays exactly as it was."""
    created = await create_token(client, tenant_a.headers)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET status = 'suspended' WHERE id = :id"), {"id": tenant_a.id}
        )
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    assert await works(client, str(created["token"])) == 403
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before
    assert (await token_row(admin_engine, created["id"]))["last_used_at"] is None


# --- members and managers -------------------------------------------------------------------------


async def test_member_cannot_see_or_revoke_another_members_token(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    add_member,  # type: ignore[no-untyped-def]
) -> None:
    member: Member = await add_member(tenant_a, "member")
    owner_token = tenant_a.workspace.token_id
    await used(client, member.headers)
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/rotate")]:
        foreign = await client.request(method, f"/v1/tokens/{owner_token}{suffix}", headers=member.headers)
        random = await client.request(method, f"/v1/tokens/{uuid.uuid4()}{suffix}", headers=member.headers)
        assert foreign.status_code == 404, (method, suffix)
        assert (foreign.status_code, foreign.content) == (random.status_code, random.content)
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before

    listed = (await client.get("/v1/tokens", headers=member.headers)).json()["data"]
    assert [t["id"] for t in listed] == [str(member.token_id)]
    others = await client.get(f"/v1/tokens?member_id={tenant_a.workspace.owner_membership_id}", headers=member.headers)
    assert others.status_code == 403
    assert others.headers["x-accepted-permissions"] == "members=write"
    mine = await client.get(f"/v1/tokens?member_id={member.membership_id}", headers=member.headers)
    assert [t["id"] for t in mine.json()["data"]] == [str(member.token_id)]


async def test_owner_can_list_see_and_revoke_a_members_token_but_not_rotate_it(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    add_member,  # type: ignore[no-untyped-def]
) -> None:
    member: Member = await add_member(tenant_a, "member")
    listed = await client.get(f"/v1/tokens?member_id={member.membership_id}", headers=tenant_a.headers)
    assert [t["id"] for t in listed.json()["data"]] == [str(member.token_id)]
    own = (await client.get("/v1/tokens", headers=tenant_a.headers)).json()["data"]
    assert str(member.token_id) not in [t["id"] for t in own]
    assert (await client.get(f"/v1/tokens/{member.token_id}", headers=tenant_a.headers)).status_code == 200

    # Rotation would hand the owner a secret acting as the member: it stays with the member.
    await used(client, tenant_a.headers)
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)
    rotate = await client.post(f"/v1/tokens/{member.token_id}/rotate", headers=tenant_a.headers)
    assert rotate.status_code == 404
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before

    assert await works(client, member.token) == 200
    assert (await client.delete(f"/v1/tokens/{member.token_id}", headers=tenant_a.headers)).status_code == 204
    assert await works(client, member.token) == 401


async def test_admin_token_without_members_write_is_not_a_manager(
    client: Client,
    provisioning: ProvisioningService,
    tenant_a: Tenant,
    add_member,  # type: ignore[no-untyped-def]
) -> None:
    member: Member = await add_member(tenant_a, "member")
    narrow, _ = await provisioning.issue_token(
        tenant_a.id,
        tenant_a.workspace.owner_membership_id,
        name="tokens only",
        permissions={"tokens": "write", "members": "read"},
    )
    assert (await client.get(f"/v1/tokens/{member.token_id}", headers=bearer(narrow.token))).status_code == 404
    assert (await client.delete(f"/v1/tokens/{member.token_id}", headers=bearer(narrow.token))).status_code == 404
    assert await works(client, member.token) == 200


# --- cross-workspace ------------------------------------------------------------------------------
# Another workspace's ids on every route that takes one: tests/isolation/test_foreign_ids.py.


async def test_listing_another_workspaces_member_is_an_empty_page(
    client: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    foreign = await client.get(
        f"/v1/tokens?member_id={tenant_b.workspace.owner_membership_id}", headers=tenant_a.headers
    )
    random = await client.get(f"/v1/tokens?member_id={uuid.uuid4()}", headers=tenant_a.headers)
    assert foreign.status_code == 200
    assert foreign.json() == random.json() == {"data": [], "has_more": False, "next_cursor": None}


# --- leak report ----------------------------------------------------------------------------------


async def test_leak_report_revokes_a_valid_token_and_audits_it_in_its_workspace_only(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    leaked = await create_token(client, tenant_a.headers, name="leaked")
    assert await works(client, str(leaked["token"])) == 200
    events_b = await snapshot_rows(admin_engine, "audit_events", tenant_b.id)
    tokens_b = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id)

    response = await client.post("/v1/tokens/leak-report", json={"tokens": [leaked["token"]]})
    assert response.status_code == 202
    assert response.json() == {"received": 1}
    assert await works(client, str(leaked["token"])) == 401
    assert await works(client, tenant_a.token) == 200  # only the reported token

    actions = await audit_actions(admin_engine, tenant_a.id)
    assert ("token.leak_reported", str(leaked["id"]), "anonymous") in actions
    assert await snapshot_rows(admin_engine, "audit_events", tenant_b.id) == events_b
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_b.id) == tokens_b
    seen_by_a = (await client.get("/v1/audit-events?action=token.leak_reported", headers=tenant_a.headers)).json()
    assert [e["target_id"] for e in seen_by_a["data"]] == [str(leaked["id"])]
    seen_by_b = (await client.get("/v1/audit-events?action=token.leak_reported", headers=tenant_b.headers)).json()
    assert seen_by_b["data"] == []


async def test_leak_report_answers_identically_whatever_the_tokens_were(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    membership = tenant_a.workspace.owner_membership_id
    valid, valid_id = await provisioning.issue_token(tenant_a.id, membership, name="valid")
    revoked, revoked_id = await provisioning.issue_token(tenant_a.id, membership, name="revoked")
    await provisioning.revoke_token(tenant_a.id, revoked_id)
    unknown = generate_token(TEST_PEPPER).token
    admin_type = generate_token(TEST_PEPPER, "tna_").token
    revoked_row = await token_row(admin_engine, revoked_id)

    answers = {}
    for name, token in [
        ("valid", valid.token),
        ("revoked", revoked.token),
        ("unknown", unknown),
        ("malformed", "tnt_not-a-token"),
        ("admin type", admin_type),
        ("empty", ""),
    ]:
        response = await client.post("/v1/tokens/leak-report", json={"tokens": [token]})
        answers[name] = (response.status_code, response.content, response.headers.get("content-type"))
    assert answers["valid"][0] == 202
    for name, answer in answers.items():
        assert answer == answers["valid"], name

    assert (await token_row(admin_engine, valid_id))["revoked_at"] is not None
    assert await token_row(admin_engine, revoked_id) == revoked_row  # already revoked: untouched
    leak_events = [a for a in await audit_actions(admin_engine, tenant_a.id) if a[0] == "token.leak_reported"]
    assert leak_events == [("token.leak_reported", str(valid_id), "anonymous")]


async def test_leak_report_takes_many_tokens_from_many_workspaces(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    a = await create_token(client, tenant_a.headers)
    b = await create_token(client, tenant_b.headers)
    body = {"tokens": [a["token"], b["token"], a["token"], "junk", generate_token(TEST_PEPPER).token]}
    response = await client.post("/v1/tokens/leak-report", json=body)
    assert response.status_code == 202
    assert response.json() == {"received": 5}
    assert await works(client, str(a["token"])) == 401
    assert await works(client, str(b["token"])) == 401
    leaks_a = [e for e in await audit_actions(admin_engine, tenant_a.id) if e[0] == "token.leak_reported"]
    leaks_b = [e for e in await audit_actions(admin_engine, tenant_b.id) if e[0] == "token.leak_reported"]
    assert leaks_a == [("token.leak_reported", str(a["id"]), "anonymous")]
    assert leaks_b == [("token.leak_reported", str(b["id"]), "anonymous")]


@pytest.mark.parametrize(
    "body",
    [{"tokens": []}, {"tokens": ["x"] * 101}, {"tokens": "tnt_x"}, {}, {"tokens": ["x"], "tenant_id": "y"}],
)
async def test_leak_report_with_a_malformed_body_is_422(client: Client, body: dict[str, object]) -> None:
    assert (await client.post("/v1/tokens/leak-report", json=body)).status_code == 422


async def test_leak_reports_are_limited_per_client_address(
    client: Client, admin_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint is public and writes per token: past the limit it answers 429."""
    async with admin_engine.begin() as connection:  # other tests of this run reported from here too
        await connection.execute(text("DELETE FROM public.auth_throttle WHERE key LIKE 'leak-report:%'"))
    monkeypatch.setattr(token_service_module, "LEAK_REPORTS_PER_WINDOW", 2)
    body = {"tokens": ["tnt_not-a-token"]}
    answers = [(await client.post("/v1/tokens/leak-report", json=body)).status_code for _ in range(3)]
    assert answers == [202, 202, 429]
    refused = await client.post("/v1/tokens/leak-report", json=body)
    assert refused.headers["retry-after"].isdigit()
    assert refused.headers["content-type"] == "application/problem+json"
    # The wait is stored with the key (a lowered limit does not end it): free the address again.
    async with admin_engine.begin() as connection:
        await connection.execute(text("DELETE FROM public.auth_throttle WHERE key LIKE 'leak-report:%'"))


async def test_an_admin_cannot_see_or_revoke_an_owners_tokens(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    add_member,  # type: ignore[no-untyped-def]
) -> None:
    """Revoking every owner token would lock the owners out: only an owner may touch them."""
    admin: Member = await add_member(tenant_a, "admin")
    owner_token_id = tenant_a.workspace.token_id
    await used(client, tenant_a.headers)
    await used(client, bearer(admin.token))  # its own last_used_at is written once, before the snapshot
    before = await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id)

    listed = await client.get(
        f"/v1/tokens?member_id={tenant_a.workspace.owner_membership_id}", headers=bearer(admin.token)
    )
    assert listed.status_code == 200
    assert listed.json()["data"] == []
    random_id = uuid.uuid4()
    for method in ("GET", "DELETE"):
        owner = await client.request(method, f"/v1/tokens/{owner_token_id}", headers=bearer(admin.token))
        random = await client.request(method, f"/v1/tokens/{random_id}", headers=bearer(admin.token))
        assert owner.status_code == 404
        assert (owner.status_code, owner.content) == (random.status_code, random.content)
    assert await snapshot_rows(admin_engine, "personal_access_tokens", tenant_a.id) == before
    assert await works(client, tenant_a.token) == 200


async def test_a_leak_report_revokes_the_tokens_minted_with_the_leaked_one(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, admin_engine: AsyncEngine
) -> None:
    child = await create_token(client, tenant_a.headers, name="child")
    grandchild = await create_token(client, bearer(str(child["token"])), name="grandchild")
    sibling = await create_token(client, tenant_a.headers, name="sibling")
    other = await create_token(client, tenant_b.headers, name="other workspace")
    assert (await token_row(admin_engine, child["id"]))["created_by_token_id"] == tenant_a.workspace.token_id

    response = await client.post("/v1/tokens/leak-report", json={"tokens": [str(child["token"])]})
    assert response.status_code == 202
    assert await works(client, str(child["token"])) == 401
    assert await works(client, str(grandchild["token"])) == 401
    assert await works(client, str(sibling["token"])) == 200  # made by the parent, not by the leaked one
    assert await works(client, tenant_a.token) == 200
    assert await works(client, str(other["token"])) == 200
    leaked = {a[1] for a in await audit_actions(admin_engine, tenant_a.id) if a[0] == "token.leak_reported"}
    assert leaked == {str(child["id"]), str(grandchild["id"])}


async def test_a_leaked_admin_token_is_revoked_too(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    assert (await client.get("/admin/v1/workspaces", headers=admin_headers)).status_code == 200
    token = admin_headers["Authorization"].removeprefix("Bearer ")
    response = await client.post("/v1/tokens/leak-report", json={"tokens": [token]})
    assert response.status_code == 202
    assert (await client.get("/admin/v1/workspaces", headers=admin_headers)).status_code == 401
    async with admin_engine.connect() as connection:
        actions = (
            (
                await connection.execute(
                    text("SELECT action FROM public.platform_audit_events WHERE action = 'admin_token.leak_reported'")
                )
            )
            .scalars()
            .all()
        )
    assert actions


async def test_whoami_describes_the_presented_token_and_its_effective_permissions(
    client: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    narrow = await create_token(client, tenant_a.headers, permissions={"products": "read"})
    answer = await client.get("/v1/whoami", headers=bearer(str(narrow["token"])))
    assert answer.status_code == 200
    body = answer.json()
    assert body["workspace_id"] == str(tenant_a.id)
    me = await client.get("/v1/members/me", headers=tenant_a.headers)
    assert body["member_id"] == me.json()["id"]  # the membership id, never the global user id
    assert "user_id" not in body
    assert body["token_id"] == str(narrow["id"])
    assert body["role"] == "owner"
    assert body["permissions"]["products"] == "read"
    assert body["permissions"]["orders"] == "none"

    # The workspace comes only from the token: a header naming B changes nothing.
    spoofed = await client.get("/v1/whoami", headers={**tenant_a.headers, "X-Tenant-Id": str(tenant_b.id)})
    assert spoofed.json()["workspace_id"] == str(tenant_a.id)
    assert (await client.get("/v1/whoami")).status_code == 401
