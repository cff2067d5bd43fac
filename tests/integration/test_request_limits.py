"""Request limits per workspace and per token (http/limits.py), counted in this process.

Each test sets the one limit it is about (the others are roomy) and asserts the refusal itself:
429 problem+json, Retry-After, RateLimit-Policy and RateLimit, `violated_policies`, nothing done
in the database, and the other token or workspace still served with its rows unchanged.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.settings import Settings
from tests.support import Tenant, snapshot_rows
from tests.support.limits import header_items, hold_request, limited_app

PRODUCTS = "/v1/products"


async def second_token(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    response = await client.post(
        "/v1/tokens", json={"name": "second", "permissions": {"products": "write"}}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def product(sku: str | None = None) -> dict[str, object]:
    return {"name": "Thing", "price_cents": 100, "currency": "EUR", "sku": sku or f"L-{uuid.uuid4().hex[:8]}"}


async def count(admin_engine: AsyncEngine, table: str, tenant: Tenant) -> int:
    async with admin_engine.connect() as connection:
        result = await connection.execute(
            text(f"SELECT count(*) FROM public.{table} WHERE tenant_id = :t"), {"t": tenant.id}
        )
        return int(result.scalar_one())


async def test_a_token_over_its_rate_gets_429_with_retry_after_and_ratelimit_headers(
    settings: Settings, tenant_a: Tenant
) -> None:
    async with limited_app(settings, limit_token_requests=3, limit_token_window_s=60) as (app, client):
        answers = [await client.get(PRODUCTS, headers=tenant_a.headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [header_items(a.headers["RateLimit"])["token"]["r"] for a in answers] == ["2", "1", "0"]
        refused = await client.get(PRODUCTS, headers=tenant_a.headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == "https://tenantry.dev/problems/rate-limited"
    assert body["status"] == 429
    assert body["violated_policies"] == ["token"]
    # One request every 20 s refills the bucket: the next fits in at most 20 s.
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    policy = header_items(refused.headers["RateLimit-Policy"])
    assert policy["token"] == {"q": "3", "w": "60"}
    assert policy["token-concurrency"]["qu"] == '"concurrent-requests"'
    state = header_items(refused.headers["RateLimit"])
    assert state["token"]["r"] == "0"
    assert state["token"]["t"] == refused.headers["Retry-After"]  # the same moment (draft, section 6)
    assert app.state.limits.refusals.counts == {("token", "rate"): 1}


async def test_a_refused_write_does_no_database_work(
    settings: Settings, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    async with limited_app(settings, limit_token_requests=1, limit_token_window_s=60) as (_, client):
        first = await client.post(PRODUCTS, json=product(), headers=tenant_a.headers)
        assert first.status_code == 201
        before = await snapshot_rows(admin_engine, "products", tenant_a.id)
        keys_before = await count(admin_engine, "idempotency_keys", tenant_a)
        refused = await client.post(
            PRODUCTS, json=product(), headers={**tenant_a.headers, "Idempotency-Key": "refused-once"}
        )
        assert refused.status_code == 429
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before
    assert await count(admin_engine, "idempotency_keys", tenant_a) == keys_before  # never claimed


async def test_each_token_of_a_workspace_has_its_own_limit(settings: Settings, tenant_a: Tenant) -> None:
    async with limited_app(settings, limit_token_requests=2, limit_token_window_s=60) as (_, client):
        other = await second_token(client, tenant_a)  # the owner's first request
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 429
        served = [await client.get(PRODUCTS, headers=other) for _ in range(2)]
        assert [s.status_code for s in served] == [200, 200]
        refused = await client.get(PRODUCTS, headers=other)
    assert refused.status_code == 429
    assert refused.json()["violated_policies"] == ["token"]


async def test_the_workspace_limit_counts_every_token_of_the_workspace(settings: Settings, tenant_a: Tenant) -> None:
    async with limited_app(settings, limit_workspace_requests=4, limit_workspace_window_s=60) as (_, client):
        other = await second_token(client, tenant_a)  # 1
        statuses = [
            (await client.get(PRODUCTS, headers=headers)).status_code
            for headers in (other, tenant_a.headers, other)  # 2, 3, 4
        ]
        assert statuses == [200, 200, 200]
        refused_owner = await client.get(PRODUCTS, headers=tenant_a.headers)
        refused_other = await client.get(PRODUCTS, headers=other)
    assert (refused_owner.status_code, refused_other.status_code) == (429, 429)
    assert refused_owner.json()["violated_policies"] == ["workspace"]
    assert header_items(refused_other.headers["RateLimit"])["workspace"]["r"] == "0"


async def test_another_workspace_is_served_while_one_is_refused(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, admin_engine: AsyncEngine
) -> None:
    async with limited_app(settings, limit_workspace_requests=2, limit_workspace_window_s=60) as (_, client):
        created = await client.post(PRODUCTS, json=product(), headers=tenant_b.headers)
        assert created.status_code == 201
        rows_b = await snapshot_rows(admin_engine, "products", tenant_b.id)
        rows_a = await snapshot_rows(admin_engine, "products", tenant_a.id)
        for _ in range(2):
            assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        for _ in range(5):
            refused = await client.post(PRODUCTS, json=product(), headers=tenant_a.headers)
            assert refused.status_code == 429
        listed = await client.get(PRODUCTS, headers=tenant_b.headers)
        assert listed.status_code == 200
        assert [p["id"] for p in listed.json()["data"]] == [created.json()["id"]]
        assert header_items(listed.headers["RateLimit"])["workspace"]["r"] == "0"  # B's own: 2 used of 2
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == rows_a
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == rows_b


async def test_the_cap_refuses_a_request_beyond_the_slots_in_flight(settings: Settings, tenant_a: Tenant) -> None:
    async with limited_app(settings, limit_token_concurrency=1) as (app, client):
        held = await hold_request(app, tenant_a)
        refused = await client.get(PRODUCTS, headers=tenant_a.headers)
        assert refused.status_code == 429
        assert refused.json()["violated_policies"] == ["token-concurrency"]
        assert refused.headers["Retry-After"] == "1"
        assert header_items(refused.headers["RateLimit"])["token-concurrency"] == {"r": "0"}
        assert await held.finish() == 201
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200


async def test_a_workspace_cap_holds_across_its_tokens(settings: Settings, tenant_a: Tenant, tenant_b: Tenant) -> None:
    async with limited_app(settings, limit_workspace_concurrency=1) as (app, client):
        other = await second_token(client, tenant_a)
        held = await hold_request(app, tenant_a)
        refused = await client.get(PRODUCTS, headers=other)
        assert refused.json()["violated_policies"] == ["workspace-concurrency"]
        assert (await client.get(PRODUCTS, headers=tenant_b.headers)).status_code == 200
        assert await held.finish() == 201


async def test_slots_are_released_after_success_errors_and_a_client_hanging_up(
    settings: Settings, tenant_a: Tenant
) -> None:
    async with limited_app(settings, limit_token_concurrency=1) as (app, client):
        store = app.state.limits.store
        key = f"{{{tenant_a.id}}}:ws"
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        assert (await client.get(f"{PRODUCTS}/{uuid.uuid4()}", headers=tenant_a.headers)).status_code == 404
        assert (await client.post(PRODUCTS, json={"name": 1}, headers=tenant_a.headers)).status_code == 422
        assert (await client.post(PRODUCTS, content=b"{", headers=tenant_a.headers)).status_code in (400, 415)
        taken = product()
        assert (await client.post(PRODUCTS, json=taken, headers=tenant_a.headers)).status_code == 201
        assert (await client.post(PRODUCTS, json=taken, headers=tenant_a.headers)).status_code == 409
        assert store.in_flight(key) == 0
        held = await hold_request(app, tenant_a)
        assert store.in_flight(key) == 1
        await held.hang_up()
        assert held.outcome[-1] == "disconnect"
        assert store.in_flight(key) == 0
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200


async def test_a_slot_is_released_when_the_request_is_cancelled(settings: Settings, tenant_a: Tenant) -> None:
    async with limited_app(settings, limit_token_concurrency=1) as (app, client):
        held = await hold_request(app, tenant_a)
        held.task.cancel()  # what a server does to a request when it shuts down mid-flight
        await asyncio.gather(held.task, return_exceptions=True)
        assert app.state.limits.store.in_flight(f"{{{tenant_a.id}}}:ws") == 0
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200


async def test_admitted_answers_carry_the_policy_and_what_is_left(settings: Settings, tenant_a: Tenant) -> None:
    async with limited_app(
        settings,
        limit_workspace_requests=50,
        limit_workspace_window_s=10,
        limit_workspace_concurrency=7,
        limit_token_requests=20,
        limit_token_window_s=5,
        limit_token_concurrency=3,
    ) as (_, client):
        answer = await client.get("/v1/whoami", headers=tenant_a.headers)
        unlimited = await client.get("/health/live")
    assert answer.status_code == 200
    assert header_items(answer.headers["RateLimit-Policy"]) == {
        "workspace": {"q": "50", "w": "10"},
        "token": {"q": "20", "w": "5"},
        "workspace-concurrency": {"q": "7", "qu": '"concurrent-requests"'},
        "token-concurrency": {"q": "3", "qu": '"concurrent-requests"'},
    }
    state = header_items(answer.headers["RateLimit"])
    assert state["workspace"] == {"r": "49", "t": "1"}
    assert state["token"] == {"r": "19", "t": "1"}
    assert state["token-concurrency"] == {"r": "2"}  # this request holds one slot while it runs
    assert "RateLimit" not in unlimited.headers  # no token, no workspace: not limited here


async def test_a_page_of_100_counts_as_five_requests(settings: Settings, tenant_a: Tenant, tenant_b: Tenant) -> None:
    async with limited_app(settings, limit_token_requests=10, limit_token_window_s=60) as (_, client):
        heavy = await client.get(PRODUCTS, params={"limit": 100}, headers=tenant_a.headers)
        light = await client.get(PRODUCTS, headers=tenant_a.headers)
        assert [heavy.status_code, light.status_code] == [200, 200]
        assert header_items(heavy.headers["RateLimit"])["token"]["r"] == "5"
        assert header_items(light.headers["RateLimit"])["token"]["r"] == "4"
        refused = await client.get(PRODUCTS, params={"limit": 100}, headers=tenant_a.headers)
        assert refused.status_code == 429
        assert refused.json()["violated_policies"] == ["token"]
        # Four requests are left for plain pages, and the other workspace has its own budget.
        plain = [(await client.get(PRODUCTS, headers=tenant_a.headers)).status_code for _ in range(4)]
        assert plain == [200, 200, 200, 200]
        other = await client.get(PRODUCTS, params={"limit": 100}, headers=tenant_b.headers)
        assert other.status_code == 200
