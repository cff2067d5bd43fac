"""The tenant audit log: append-only in SQL, complete on the wire, filterable, and per workspace."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.permissions import role_permissions
from tenantry.core.ids import uuid7
from tenantry.core.sqlstate import sqlstate_of
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import Tenant, as_tenant, snapshot_rows

Client = AsyncTestClient[Litestar]

EVENT_FIELDS = {
    "id",
    "occurred_at",
    "actor_type",
    "actor_member_id",
    "actor_admin_token_id",
    "token_fingerprint",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "details",
}


def fingerprint(token: str) -> str:
    return base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()


async def events(client: Client, tenant: Tenant, **params: object) -> list[dict[str, object]]:
    response = await client.get("/v1/audit-events", params={"limit": 100, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


@pytest.fixture
def append(app_engine: AsyncEngine, settings: Settings):  # type: ignore[no-untyped-def]
    """Append an event as the tenant role (which may INSERT), independent of any other route."""

    async def add(
        tenant: Tenant,
        action: str,
        target_type: str,
        target_id: str | None = None,
        *,
        actor: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        event_id = uuid7()
        async with app_engine.begin() as connection:
            await as_tenant(connection, settings, tenant.id)
            await connection.execute(
                text(
                    "INSERT INTO public.audit_events (tenant_id, id, occurred_at, actor_type, actor_member_id, "
                    "action, target_type, target_id) VALUES (:t, :id, coalesce(:at, now()), :type, :actor, "
                    ":action, :target_type, :target_id)"
                ),
                {
                    "t": tenant.id,
                    "id": event_id,
                    "at": occurred_at,
                    "type": "member" if actor else "system",
                    "actor": actor,
                    "action": action,
                    "target_type": target_type,
                    "target_id": target_id,
                },
            )
        return str(event_id)

    return add


# --- append-only ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE public.audit_events SET action = 'tampered' WHERE tenant_id = :t",
        "DELETE FROM public.audit_events WHERE tenant_id = :t",
    ],
)
async def test_audit_log_is_append_only_for_the_tenant_role(
    client: Client,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    statement: str,
    append,  # type: ignore[no-untyped-def]
) -> None:
    await append(tenant_a, "test.appended", "thing")  # the tenant role may append
    before = await snapshot_rows(admin_engine, "audit_events", tenant_a.id)
    assert before
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text(statement), {"t": tenant_a.id})
        assert sqlstate_of(raised.value) == "42501"
    assert await snapshot_rows(admin_engine, "audit_events", tenant_a.id) == before


async def test_tenant_role_cannot_append_to_another_workspaces_log(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    before_b = await snapshot_rows(admin_engine, "audit_events", tenant_b.id)
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(
                text(
                    "INSERT INTO public.audit_events (tenant_id, id, actor_type, action, target_type) "
                    "VALUES (:b, :id, 'system', 'forged', 'x')"
                ),
                {"b": tenant_b.id, "id": uuid.uuid4()},
            )
        assert sqlstate_of(raised.value) == "42501"
    assert await snapshot_rows(admin_engine, "audit_events", tenant_b.id) == before_b


# --- what an event carries ------------------------------------------------------------------------


async def test_events_carry_actor_token_fingerprint_and_request_id(client: Client, tenant_a: Tenant) -> None:
    response = await client.post("/v1/tokens", json={"name": "audited"}, headers=tenant_a.headers)
    assert response.status_code == 201
    created = response.json()

    [event] = await events(client, tenant_a, action="token.created", target_id=created["id"])
    assert set(event) == EVENT_FIELDS
    assert event["actor_type"] == "member"
    assert event["actor_member_id"] == str(tenant_a.workspace.owner_membership_id)
    assert event["actor_admin_token_id"] is None
    assert event["token_fingerprint"] == fingerprint(tenant_a.token)
    assert event["token_fingerprint"] != fingerprint(created["token"])
    assert event["request_id"] == response.headers["request-id"]
    assert event["target_type"] == "token"
    assert event["details"]["name"] == "audited"  # type: ignore[index]
    # The log never holds a secret.
    everything = (await client.get("/v1/audit-events?limit=100", headers=tenant_a.headers)).text
    assert created["token"] not in everything
    assert tenant_a.token not in everything


async def test_token_revocation_and_rotation_are_audited(client: Client, tenant_a: Tenant) -> None:
    first = (await client.post("/v1/tokens", json={"name": "one"}, headers=tenant_a.headers)).json()
    rotated = await client.post(
        f"/v1/tokens/{first['id']}/rotate", json={"grace_period_seconds": 30}, headers=tenant_a.headers
    )
    assert rotated.status_code == 201
    revoked = await client.delete(f"/v1/tokens/{rotated.json()['id']}", headers=tenant_a.headers)
    assert revoked.status_code == 204

    log = await events(client, tenant_a, target_type="token")
    assert [(e["action"], e["target_id"]) for e in log] == [
        ("token.revoked", rotated.json()["id"]),
        ("token.rotated", first["id"]),
        ("token.created", first["id"]),
    ]
    assert log[1]["details"] == {  # type: ignore[comparison-overlap]
        "replaced_by_id": rotated.json()["id"],
        "grace_period_seconds": 30,
        "old_expires_at": log[1]["details"]["old_expires_at"],  # type: ignore[index]
    }
    assert log[0]["request_id"] == revoked.headers["request-id"]
    assert log[1]["request_id"] == rotated.headers["request-id"]


# --- filters and pagination -----------------------------------------------------------------------


async def test_filters_narrow_the_log(client: Client, tenant_a: Tenant, append) -> None:  # type: ignore[no-untyped-def]
    owner, someone = tenant_a.workspace.owner_membership_id, uuid.uuid4()
    product, other_product = str(uuid.uuid4()), str(uuid.uuid4())
    created = await append(tenant_a, "product.created", "product", product, actor=owner)
    updated = await append(tenant_a, "product.updated", "product", product, actor=owner)
    other = await append(tenant_a, "product.created", "product", other_product, actor=someone)
    token = (await client.post("/v1/tokens", json={"name": "t"}, headers=tenant_a.headers)).json()

    assert [e["id"] for e in await events(client, tenant_a, action="product.created")] == [other, created]
    assert [e["id"] for e in await events(client, tenant_a, target_type="product", target_id=product)] == [
        updated,
        created,
    ]
    assert [e["target_id"] for e in await events(client, tenant_a, target_type="token")] == [token["id"]]
    assert [e["id"] for e in await events(client, tenant_a, target_id=other_product)] == [other]
    assert [e["id"] for e in await events(client, tenant_a, actor_member_id=str(someone))] == [other]
    by_owner = await events(client, tenant_a, actor_member_id=str(owner))
    assert {e["id"] for e in by_owner} >= {created, updated}
    assert other not in {e["id"] for e in by_owner}
    assert await events(client, tenant_a, actor_member_id=str(uuid.uuid4())) == []
    assert await events(client, tenant_a, action="no.such.action") == []


async def test_since_is_inclusive_and_until_exclusive(client: Client, tenant_a: Tenant, append) -> None:  # type: ignore[no-untyped-def]
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    old = await append(tenant_a, "test.dated", "thing", occurred_at=long_ago)
    later = await append(tenant_a, "test.dated", "thing", occurred_at=long_ago + timedelta(days=2))
    now = await append(tenant_a, "test.dated", "thing")

    def ids(found: list[dict[str, object]]) -> list[object]:
        return [e["id"] for e in found]

    day_after = (long_ago + timedelta(days=1)).isoformat()
    assert ids(await events(client, tenant_a, action="test.dated", since=day_after)) == [now, later]
    assert ids(await events(client, tenant_a, action="test.dated", until=day_after)) == [old]
    assert ids(await events(client, tenant_a, action="test.dated", since=long_ago.isoformat())) == [now, later, old]
    assert ids(await events(client, tenant_a, action="test.dated", until=long_ago.isoformat())) == []
    window = {"since": "2020-01-01T00:00:01Z", "until": "2020-01-03T00:00:01+00:00"}
    assert ids(await events(client, tenant_a, action="test.dated", **window)) == [later]


async def test_a_timestamp_without_offset_is_utc_whatever_the_app_time_zone(
    client: Client,
    tenant_a: Tenant,
    append,  # type: ignore[no-untyped-def]
) -> None:
    event = await append(tenant_a, "test.dated", "thing", occurred_at=datetime(2020, 1, 1, 12, 0, tzinfo=UTC))
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"  # UTC+9: a naive timestamp read as local time would miss
    time.tzset()
    try:
        found = await events(client, tenant_a, since="2020-01-01T11:59:00", until="2020-01-01T12:01:00")
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()
    assert [e["id"] for e in found] == [event]


@pytest.mark.parametrize(
    "query",
    [
        "since=yesterday",
        "until=2020-13-01",
        "actor_member_id=nope",
        "limit=0",
        "limit=101",
        "cursor=abc",
        "action=" + "x" * 65,
    ],
)
async def test_bad_filters_are_400(client: Client, tenant_a: Tenant, query: str) -> None:
    response = await client.get(f"/v1/audit-events?{query}", headers=tenant_a.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_cursor_pagination_is_newest_first_and_stable(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, append
) -> None:  # type: ignore[no-untyped-def]
    appended = [await append(tenant_a, "test.paged", "thing") for _ in range(7)]
    everything = [e["id"] for e in await events(client, tenant_a, action="test.paged")]
    assert everything == list(reversed(appended))  # newest first

    seen: list[object] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3, "action": "test.paged", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/audit-events", params=params, headers=tenant_a.headers)
        page = response.json()
        seen += [e["id"] for e in page["data"]]
        pages += 1
        if pages == 1:
            # New events arriving between pages do not shift the pages already being walked.
            await append(tenant_a, "test.paged", "thing")
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == everything
    assert pages == 3

    first = (await client.get("/v1/audit-events?limit=1&action=test.paged", headers=tenant_a.headers)).json()
    # A cursor is bound to its filters and its workspace.
    other_filter = await client.get(
        "/v1/audit-events", params={"limit": 1, "cursor": first["next_cursor"]}, headers=tenant_a.headers
    )
    assert other_filter.status_code == 400
    other_workspace = await client.get(
        "/v1/audit-events",
        params={"limit": 1, "action": "test.paged", "cursor": first["next_cursor"]},
        headers=tenant_b.headers,
    )
    assert other_workspace.status_code == 400


# --- isolation and permissions --------------------------------------------------------------------


async def test_a_workspace_never_sees_another_workspaces_events(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    own = (await client.post("/v1/tokens", json={"name": "a"}, headers=tenant_a.headers)).json()
    foreign = (await client.post("/v1/tokens", json={"name": "b"}, headers=tenant_b.headers)).json()
    before_b = await snapshot_rows(admin_engine, "audit_events", tenant_b.id)
    assert before_b

    listed = await events(client, tenant_a)
    assert own["id"] in {e["target_id"] for e in listed}
    assert foreign["id"] not in {e["target_id"] for e in listed}
    # Filtering on B's ids answers exactly like filtering on ids that never existed.
    for field, foreign_value in [
        ("target_id", foreign["id"]),
        ("actor_member_id", str(tenant_b.workspace.owner_membership_id)),
    ]:
        probe = await client.get(f"/v1/audit-events?{field}={foreign_value}", headers=tenant_a.headers)
        random = await client.get(f"/v1/audit-events?{field}={uuid.uuid4()}", headers=tenant_a.headers)
        assert probe.status_code == 200
        assert probe.content == random.content
    assert await snapshot_rows(admin_engine, "audit_events", tenant_b.id) == before_b


async def test_reading_the_log_needs_audit_events_read(
    client: Client, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    owner = tenant_a.workspace.owner_membership_id
    no_audit = role_permissions("owner") | {"audit_events": "none"}
    token, _ = await provisioning.issue_token(tenant_a.id, owner, name="no audit", permissions=no_audit)
    response = await client.get("/v1/audit-events", headers={"Authorization": f"Bearer {token.token}"})
    assert response.status_code == 403
    assert response.headers["x-accepted-permissions"] == "audit_events=read"
    assert (await client.get("/v1/audit-events")).status_code == 401


async def test_filter_by_token_fingerprint_finds_what_a_leaked_token_did(client: Client, tenant_a: Tenant) -> None:
    made = await client.post("/v1/tokens", json={"name": "soon leaked"}, headers=tenant_a.headers)
    leaked = made.json()["token"]
    fingerprint = base64.b64encode(hashlib.sha256(leaked.encode()).digest()).decode()
    created = await client.post(
        "/v1/products",
        json={"name": "by the leaked token", "price_cents": 1, "currency": "EUR", "sku": "LEAKED-1"},
        headers={"Authorization": f"Bearer {leaked}"},
    )
    assert created.status_code == 201
    found = await client.get("/v1/audit-events", params={"token_fingerprint": fingerprint}, headers=tenant_a.headers)
    assert found.status_code == 200
    events = found.json()["data"]
    assert [(e["action"], e["target_id"]) for e in events] == [("product.created", created.json()["id"])]
    assert all(e["token_fingerprint"] == fingerprint for e in events)
