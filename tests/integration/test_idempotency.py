"""Idempotency-Key on tenant POSTs: replay, reuse, in-flight, failure, expiry, scoping, secrets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.http.idempotency import request_fingerprint
from tenantry.settings import Settings
from tests.support import Tenant, as_tenant, snapshot_rows

Client = AsyncTestClient[Litestar]


def product_body(**fields: Any) -> dict[str, Any]:
    body = {"name": "Widget", "price_cents": 1999, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
    body.update(fields)
    return body


def with_key(tenant: Tenant, key: str, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or tenant.token}", "Idempotency-Key": key}


async def key_rows(admin_engine: AsyncEngine, tenant_id: uuid.UUID, key: str) -> list[dict[str, Any]]:
    """The stored rows for a key, read past RLS as the privileged account."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT token_id, id, request_fingerprint, response_status, response_headers, response_body, "
                "expires_at - created_at AS lifetime FROM public.idempotency_keys WHERE tenant_id = :t AND key = :k"
            ),
            {"t": tenant_id, "k": key},
        )
        return [dict(row._mapping) for row in rows]


async def product_count(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> int:
    return len(await snapshot_rows(admin_engine, "products", tenant_id))


async def insert_running_key(
    app_engine: AsyncEngine, settings: Settings, tenant: Tenant, key: str, body: dict[str, Any], *, age: timedelta
) -> None:
    """A key row still running (no answer yet), as a first request in flight leaves it."""
    fingerprint = request_fingerprint("POST", "/v1/products", b"", msgspec.json.encode(body))
    async with app_engine.connect() as connection, connection.begin():
        await as_tenant(connection, settings, tenant.id)
        await connection.execute(
            text(
                "INSERT INTO public.idempotency_keys (tenant_id, token_id, key, request_fingerprint, created_at, "
                "expires_at) VALUES (:t, :tok, :k, :f, now() - CAST(:age AS interval), now() + interval '1 day')"
            ),
            {"t": tenant.id, "tok": tenant.workspace.token_id, "k": key, "f": fingerprint, "age": age},
        )


# --- replay --------------------------------------------------------------------------------------


async def test_repeat_with_the_same_key_replays_the_first_answer(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"create-{uuid.uuid4()}"
    body = product_body()
    first = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    second = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))

    assert second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"] == f"/v1/products/{first.json()['id']}"
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["request-id"] != first.headers["request-id"]
    assert await product_count(admin_engine, tenant_a.id) == 1
    (row,) = await key_rows(admin_engine, tenant_a.id, key)
    assert row["response_status"] == 201
    assert set(row["response_headers"]) == {"content-type", "location"}
    assert bytes(row["response_body"]) == first.content
    assert row["lifetime"].total_seconds() == 24 * 3600


async def test_key_order_and_white_space_in_the_body_do_not_change_the_request(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"format-{uuid.uuid4()}"
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    compact = f'{{"name":"Widget","price_cents":5,"currency":"EUR","sku":"{sku}"}}'
    spaced = f'{{ "sku": "{sku}",\n  "currency": "EUR", "price_cents": 5, "name": "Widget" }}'
    headers = {**with_key(tenant_a, key), "Content-Type": "application/json"}
    first = await client.post("/v1/products", content=compact, headers=headers)
    second = await client.post("/v1/products", content=spaced, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert await product_count(admin_engine, tenant_a.id) == 1


async def test_without_the_header_every_post_runs(client: Client, tenant_a: Tenant, admin_engine: AsyncEngine) -> None:
    for _ in range(2):
        response = await client.post("/v1/products", json=product_body(), headers=tenant_a.headers)
        assert response.status_code == 201
        assert "idempotent-replayed" not in response.headers
    assert await product_count(admin_engine, tenant_a.id) == 2


# --- refusals ------------------------------------------------------------------------------------


async def test_the_same_key_with_a_different_body_is_422(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"reuse-{uuid.uuid4()}"
    first = await client.post("/v1/products", json=product_body(name="First"), headers=with_key(tenant_a, key))
    assert first.status_code == 201

    reused = await client.post("/v1/products", json=product_body(name="Second"), headers=with_key(tenant_a, key))

    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert "Idempotency-Key" in reused.json()["detail"]
    assert await product_count(admin_engine, tenant_a.id) == 1


async def test_the_same_key_on_another_route_is_422(client: Client, tenant_a: Tenant) -> None:
    key = f"route-{uuid.uuid4()}"
    created = await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key))
    assert created.status_code == 201
    other = await client.post("/v1/tokens", json={"name": "ci"}, headers=with_key(tenant_a, key))
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_a_key_still_in_flight_is_409(
    client: Client, tenant_a: Tenant, app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings
) -> None:
    key = f"running-{uuid.uuid4()}"
    body = product_body()
    await insert_running_key(app_engine, settings, tenant_a, key, body, age=timedelta(seconds=10))

    response = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency-key-in-progress")
    assert await product_count(admin_engine, tenant_a.id) == 0
    (row,) = await key_rows(admin_engine, tenant_a.id, key)
    assert row["response_status"] is None  # the first request's row is left alone


async def test_a_key_abandoned_by_a_crashed_request_is_taken_over(
    client: Client, tenant_a: Tenant, app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings
) -> None:
    key = f"abandoned-{uuid.uuid4()}"
    body = product_body()
    await insert_running_key(app_engine, settings, tenant_a, key, body, age=timedelta(minutes=6))

    response = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))

    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    (row,) = await key_rows(admin_engine, tenant_a.id, key)
    assert row["response_status"] == 201
    replay = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == response.content


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 256, "caf\u00e9".encode(), b"tab\there", b"nul\x00"],
    ids=["empty", "too-long", "non-ascii", "control", "nul"],
)
async def test_a_malformed_key_is_400_naming_the_header(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine, value: bytes
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"authorization", f"Bearer {tenant_a.token}".encode()),
        (b"idempotency-key", value),
    ]
    response = await client.post("/v1/products", json=product_body(), headers=headers)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-idempotency-key")
    assert "Idempotency-Key" in problem["detail"]
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert await product_count(admin_engine, tenant_a.id) == 0


async def test_the_longest_allowed_key_works(client: Client, tenant_a: Tenant) -> None:
    key = "k" * 255
    body = product_body()
    first = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    second = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert first.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"


async def test_a_replay_keeps_the_etag(client: Client, tenant_a: Tenant) -> None:
    key = f"etag-{uuid.uuid4()}"
    body = {"kind": "product_category", "code": f"c-{uuid.uuid4().hex[:8]}", "name": "Shirts"}
    first = await client.post("/v1/lookups", json=body, headers=with_key(tenant_a, key))
    assert first.status_code == 201, first.text
    assert first.headers["etag"]
    replay = await client.post("/v1/lookups", json=body, headers=with_key(tenant_a, key))
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["location"] == first.headers["location"]


# --- failures are not stored ----------------------------------------------------------------------


async def test_a_failed_request_is_not_stored_and_the_key_can_be_retried(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"failed-{uuid.uuid4()}"
    invalid = await client.post("/v1/products", json=product_body(price_cents=-1), headers=with_key(tenant_a, key))
    assert invalid.status_code == 422
    assert await key_rows(admin_engine, tenant_a.id, key) == []

    # A different (now valid) body with the same key runs: nothing was remembered.
    retried = await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key))
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await product_count(admin_engine, tenant_a.id) == 1


async def test_a_domain_conflict_is_not_stored(client: Client, tenant_a: Tenant, admin_engine: AsyncEngine) -> None:
    body = product_body()
    assert (await client.post("/v1/products", json=body, headers=tenant_a.headers)).status_code == 201
    key = f"conflict-{uuid.uuid4()}"
    duplicate = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert duplicate.status_code == 409
    assert duplicate.json()["type"].endswith("/conflict")
    assert await key_rows(admin_engine, tenant_a.id, key) == []


async def test_a_request_refused_for_permission_is_not_stored(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    created = await client.post(
        "/v1/tokens", json={"name": "reader", "permissions": {"products": "read"}}, headers=tenant_a.headers
    )
    reader = created.json()["token"]
    key = f"denied-{uuid.uuid4()}"
    denied = await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key, reader))
    assert denied.status_code == 403
    assert await key_rows(admin_engine, tenant_a.id, key) == []


async def test_an_oversized_body_with_a_key_is_413_and_not_stored(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine, settings: Settings
) -> None:
    key = f"large-{uuid.uuid4()}"
    body = msgspec.json.encode(product_body(description="x" * (settings.max_body_bytes + 1)))
    headers = {**with_key(tenant_a, key), "Content-Type": "application/json"}
    response = await client.post("/v1/products", content=body, headers=headers)
    assert response.status_code == 413
    assert await key_rows(admin_engine, tenant_a.id, key) == []
    assert await product_count(admin_engine, tenant_a.id) == 0


# --- expiry -------------------------------------------------------------------------------------


async def test_an_expired_key_counts_as_absent(client: Client, tenant_a: Tenant, admin_engine: AsyncEngine) -> None:
    key = f"expired-{uuid.uuid4()}"
    first = await client.post("/v1/products", json=product_body(name="Old"), headers=with_key(tenant_a, key))
    assert first.status_code == 201
    (before,) = await key_rows(admin_engine, tenant_a.id, key)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE public.idempotency_keys SET created_at = now() - interval '25 hours', "
                "expires_at = now() - interval '1 hour' WHERE tenant_id = :t AND key = :k"
            ),
            {"t": tenant_a.id, "k": key},
        )

    # A different body would be a 422 within the 24 hours; after them the key is simply new.
    again = await client.post("/v1/products", json=product_body(name="New"), headers=with_key(tenant_a, key))

    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    (after,) = await key_rows(admin_engine, tenant_a.id, key)
    assert after["id"] != before["id"]
    assert bytes(after["response_body"]) == again.content


async def test_expired_keys_of_the_workspace_are_swept(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    old_keys = [f"old-{i}-{uuid.uuid4()}" for i in range(3)]
    for key in old_keys:
        assert (await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key))).is_success
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.idempotency_keys SET expires_at = now() - interval '1 second' WHERE tenant_id = :t"),
            {"t": tenant_a.id},
        )
    fresh = f"fresh-{uuid.uuid4()}"
    assert (await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, fresh))).is_success
    for key in old_keys:
        assert await key_rows(admin_engine, tenant_a.id, key) == []
    assert len(await key_rows(admin_engine, tenant_a.id, fresh)) == 1


# --- scope: per token and per workspace ------------------------------------------------------------


async def test_keys_are_scoped_to_the_token(client: Client, tenant_a: Tenant, admin_engine: AsyncEngine) -> None:
    second_token = (await client.post("/v1/tokens", json={"name": "second"}, headers=tenant_a.headers)).json()
    key = f"per-token-{uuid.uuid4()}"
    first = await client.post("/v1/products", json=product_body(name="One"), headers=with_key(tenant_a, key))
    # The same key from another token of the same member is another key: a different body is fine.
    other = await client.post(
        "/v1/products", json=product_body(name="Two"), headers=with_key(tenant_a, key, second_token["token"])
    )
    assert first.status_code == 201
    assert other.status_code == 201, other.text
    assert "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]
    rows = await key_rows(admin_engine, tenant_a.id, key)
    assert {row["token_id"] for row in rows} == {tenant_a.workspace.token_id, uuid.UUID(second_token["id"])}


async def test_another_workspace_never_replays_an_answer_with_the_same_key(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"shared-{uuid.uuid4()}"
    body = product_body()
    from_a = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert from_a.status_code == 201
    a_products = await snapshot_rows(admin_engine, "products", tenant_a.id)
    a_keys = await key_rows(admin_engine, tenant_a.id, key)

    from_b = await client.post("/v1/products", json=body, headers=with_key(tenant_b, key))

    # B's request ran as B's own: a new product in B, not A's answer.
    assert from_b.status_code == 201, from_b.text
    assert "idempotent-replayed" not in from_b.headers
    assert from_b.json()["id"] != from_a.json()["id"]
    assert (await client.get(from_b.headers["location"], headers=tenant_b.headers)).status_code == 200
    assert (await client.get(from_a.headers["location"], headers=tenant_b.headers)).status_code == 404
    # B's repeat replays B's answer, and A's rows are untouched.
    repeat_b = await client.post("/v1/products", json=body, headers=with_key(tenant_b, key))
    assert repeat_b.headers["idempotent-replayed"] == "true"
    assert repeat_b.content == from_b.content
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == a_products
    assert await key_rows(admin_engine, tenant_a.id, key) == a_keys
    assert len(await key_rows(admin_engine, tenant_b.id, key)) == 1


async def test_a_workspace_cannot_see_another_workspaces_keys(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, app_engine: AsyncEngine, settings: Settings
) -> None:
    key = f"rls-{uuid.uuid4()}"
    assert (await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key))).is_success
    async with app_engine.connect() as connection, connection.begin():
        await as_tenant(connection, settings, tenant_b.id)
        seen = await connection.execute(text("SELECT count(*) FROM public.idempotency_keys WHERE key = :k"), {"k": key})
        assert seen.scalar_one() == 0
        deleted = await connection.execute(text("DELETE FROM public.idempotency_keys WHERE key = :k"), {"k": key})
        assert deleted.rowcount == 0  # type: ignore[attr-defined]


# --- concurrency ------------------------------------------------------------------------------------


async def test_concurrent_duplicates_create_one_resource(
    fresh_app: Litestar, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    # The test client serialises requests; an ASGI transport in this event loop really overlaps them.
    key = f"race-{uuid.uuid4()}"
    body = product_body()
    transport = httpx.ASGITransport(app=fresh_app)
    async with fresh_app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        responses = await asyncio.gather(
            *(client.post("/v1/products", json=body, headers=with_key(tenant_a, key)) for _ in range(6))
        )
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"].endswith("/idempotency-key-in-progress")
        elif response is not originals[0]:
            assert response.content == originals[0].content
    assert await product_count(admin_engine, tenant_a.id) == 1


# --- secrets are never stored ---------------------------------------------------------------------


async def _create_token(client: Client, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    return "/v1/tokens", {"name": "deploy"}


async def _rotate_token(client: Client, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    victim = (await client.post("/v1/tokens", json={"name": "to-rotate"}, headers=tenant.headers)).json()
    return f"/v1/tokens/{victim['id']}/rotate", {}


async def _create_invitation(client: Client, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    return "/v1/invitations", {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "role": "member"}


@pytest.mark.parametrize("prepare", [_create_token, _rotate_token, _create_invitation])
async def test_answers_with_a_secret_are_stored_without_it(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine, prepare: Any
) -> None:
    key = f"secret-{uuid.uuid4()}"
    headers = with_key(tenant_a, key)
    path, body = await prepare(client, tenant_a)
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    secret = first.json()["token"]
    assert isinstance(secret, str)
    assert len(secret) > 20

    (row,) = await key_rows(admin_engine, tenant_a.id, key)
    stored = bytes(row["response_body"])
    assert secret.encode() not in stored
    assert secret.split("_", 1)[1][:24].encode() not in stored  # not even a part of it
    assert msgspec.json.decode(stored)["token"] is None

    replay = await client.post(path, json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    replayed = replay.json()
    assert replayed["token"] is None
    assert replayed["replayed"] is True
    assert replayed["id"] == first.json()["id"]
    assert first.json()["replayed"] is False
    assert {k: v for k, v in replayed.items() if k not in ("token", "replayed")} == {
        k: v for k, v in first.json().items() if k not in ("token", "replayed")
    }


async def test_answers_without_a_secret_are_stored_exactly(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"plain-{uuid.uuid4()}"
    first = await client.post("/v1/products", json=product_body(), headers=with_key(tenant_a, key))
    assert first.status_code == 201
    (row,) = await key_rows(admin_engine, tenant_a.id, key)
    assert b"replayed" not in bytes(row["response_body"])
    assert bytes(row["response_body"]) == first.content


# --- where the header does not apply -----------------------------------------------------------------


async def test_public_posts_ignore_the_header(client: Client, admin_engine: AsyncEngine) -> None:
    key = f"public-{uuid.uuid4()}"
    body = {"tokens": ["tnt_not_a_real_token"]}
    for _ in range(2):
        response = await client.post("/v1/tokens/leak-report", json=body, headers={"Idempotency-Key": key})
        assert response.status_code == 202
        assert "idempotent-replayed" not in response.headers
    async with admin_engine.connect() as connection:
        count = await connection.execute(
            text("SELECT count(*) FROM public.idempotency_keys WHERE key = :k"), {"k": key}
        )
        assert count.scalar_one() == 0


async def test_a_key_on_a_non_post_request_is_ignored(client: Client, tenant_a: Tenant) -> None:
    response = await client.get("/v1/products", headers=with_key(tenant_a, "x" * 300))
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers


async def test_removing_a_member_removes_the_keys_of_their_tokens(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    invited = await client.post("/v1/invitations", json={"email": email, "role": "admin"}, headers=tenant_a.headers)
    accepted = await client.post(
        "/v1/invitations/accept",
        json={"token": invited.json()["token"], "display_name": "M"},
    )
    assert accepted.status_code == 201, accepted.text
    member = accepted.json()
    key = f"member-{uuid.uuid4()}"
    made = await client.post(
        "/v1/products", json=product_body(), headers=with_key(tenant_a, key, member["token"]["token"])
    )
    assert made.status_code == 201, made.text
    assert len(await key_rows(admin_engine, tenant_a.id, key)) == 1

    removed = await client.delete(f"/v1/members/{member['member']['id']}", headers=tenant_a.headers)

    assert removed.status_code == 204
    assert await key_rows(admin_engine, tenant_a.id, key) == []


# --- a crash while the answer is stored ------------------------------------------------------------


@asynccontextmanager
async def connection_dies_when_storing_the_answer(admin_engine: AsyncEngine, key: str) -> AsyncIterator[None]:
    """The database connection that writes this key's answer dies on the spot, as if its process had.

    A trigger on the statement that stores the answer terminates its own backend: PostgreSQL ends
    the session and rolls back whatever its transaction had not committed, exactly as it does when
    the API process is killed at that moment.
    """
    suffix = uuid.uuid4().hex[:12]
    function, trigger = f"test_die_{suffix}", f"test_die_{suffix}"
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION public.{function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                "SET search_path = pg_catalog AS $$ BEGIN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON public.idempotency_keys FOR EACH ROW "
                f"WHEN (NEW.key = '{key}' AND NEW.response_status IS NOT NULL) EXECUTE FUNCTION public.{function}()"
            )
        )
    try:
        yield
    finally:
        async with admin_engine.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER {trigger} ON public.idempotency_keys"))
            await connection.execute(text(f"DROP FUNCTION public.{function}()"))


async def test_a_crash_while_the_answer_is_stored_leaves_no_work_and_no_stuck_key(
    client: Client, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    key = f"crash-{uuid.uuid4()}"
    body = product_body()
    async with connection_dies_when_storing_the_answer(admin_engine, key):
        crashed = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))

    # The work was not committed without its answer: the client hears of the failure, nothing stays.
    assert crashed.status_code >= 500, crashed.text
    assert await product_count(admin_engine, tenant_a.id) == 0
    assert await key_rows(admin_engine, tenant_a.id, key) == []

    # The retry is not told to wait for a request that will never finish: it runs the work, once.
    retried = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert await product_count(admin_engine, tenant_a.id) == 1

    # Later retries replay it, also past the age at which an abandoned key would be taken over.
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE public.idempotency_keys SET created_at = now() - interval '6 minutes' "
                "WHERE tenant_id = :t AND key = :k"
            ),
            {"t": tenant_a.id, "k": key},
        )
    again = await client.post("/v1/products", json=body, headers=with_key(tenant_a, key))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == retried.content
    assert await product_count(admin_engine, tenant_a.id) == 1
