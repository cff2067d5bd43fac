"""Idempotency-Key on POST /admin/v1/workspaces."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.http.idempotency import request_fingerprint
from tenantry.settings import Settings
from tests.support import WORKSPACES, Client, bearer, create_workspace, issue_admin_token, workspace_body


async def _workspaces_with_slug(admin_engine: AsyncEngine, slug: str) -> int:
    async with admin_engine.connect() as connection:
        return int(
            (
                await connection.execute(text("SELECT count(*) FROM public.workspaces WHERE slug = :s"), {"s": slug})
            ).scalar_one()
        )


async def _key_rows(admin_engine: AsyncEngine, key: str) -> list[tuple[object, ...]]:
    async with admin_engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT response_status, convert_from(response_body, 'UTF8') "
                "FROM public.admin_idempotency_keys WHERE key = :k"
            ),
            {"k": key},
        )
        return [tuple(r) for r in result]


def _idem(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_a_repeat_replays_the_first_status_and_body_without_the_token(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    key = f"create-{uuid.uuid4()}"
    body = workspace_body(metadata={"n": 1})
    first = await client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key))
    second = await client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key))

    assert first.status_code == 201, first.text
    assert second.status_code == first.status_code
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    original, replay = first.json(), second.json()
    assert original["owner_token"].startswith("tnt_")
    assert original["replayed"] is False
    assert replay["owner_token"] is None
    assert replay["replayed"] is True
    assert {k: v for k, v in replay.items() if k not in ("owner_token", "replayed")} == {
        k: v for k, v in original.items() if k not in ("owner_token", "replayed")
    }
    assert await _workspaces_with_slug(admin_engine, body["slug"]) == 1
    # The stored answer never holds the clear token.
    rows = await _key_rows(admin_engine, key)
    assert rows
    assert rows[0][0] == 201
    assert original["owner_token"] not in str(rows[0][1])


async def test_a_repeat_with_another_body_is_refused(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    key = f"create-{uuid.uuid4()}"
    body = workspace_body()
    assert (await client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key))).status_code == 201
    other = workspace_body()
    response = await client.post(WORKSPACES, json=other, headers=_idem(admin_headers, key))
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("idempotency-key-reused")
    assert await _workspaces_with_slug(admin_engine, other["slug"]) == 0


async def test_a_repeat_while_the_first_is_running_is_a_conflict(
    client: Client, admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings
) -> None:
    issued, token_id = await issue_admin_token(app_engine, settings, "in flight")
    key = f"create-{uuid.uuid4()}"
    body = workspace_body()
    fingerprint = request_fingerprint("POST", WORKSPACES, b"", msgspec.json.encode(body))
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO public.admin_idempotency_keys (admin_token_id, key, request_fingerprint, expires_at) "
                "VALUES (:t, :k, :f, now() + interval '1 day')"
            ),
            {"t": token_id, "k": key, "f": fingerprint},
        )
    response = await client.post(WORKSPACES, json=body, headers=_idem(bearer(issued.token), key))
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("idempotency-key-in-progress")
    assert await _workspaces_with_slug(admin_engine, body["slug"]) == 0


async def test_a_failed_attempt_releases_the_key_for_a_retry(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    taken = await create_workspace(client, admin_headers)
    key = f"create-{uuid.uuid4()}"
    body = workspace_body(slug=taken["workspace"]["slug"])
    failed = await client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key))
    assert failed.status_code == 409
    assert await _key_rows(admin_engine, key) == []

    # Same key, same body: the work runs again (and fails again, for the same reason, not a replay).
    again = await client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key))
    assert again.status_code == 409
    assert "idempotent-replayed" not in again.headers
    assert await _key_rows(admin_engine, key) == []


async def test_keys_are_scoped_to_the_admin_token(
    client: Client, admin_headers: dict[str, str], app_engine: AsyncEngine, settings: Settings
) -> None:
    other, _ = await issue_admin_token(app_engine, settings, "another admin")
    key = f"create-{uuid.uuid4()}"
    first = await client.post(WORKSPACES, json=workspace_body(), headers=_idem(admin_headers, key))
    second = await client.post(WORKSPACES, json=workspace_body(), headers=_idem(bearer(other.token), key))
    assert first.status_code == second.status_code == 201
    assert first.json()["workspace"]["id"] != second.json()["workspace"]["id"]


async def test_concurrent_duplicates_create_one_workspace(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    key = f"create-{uuid.uuid4()}"
    body = workspace_body()
    responses = await asyncio.gather(
        *(client.post(WORKSPACES, json=body, headers=_idem(admin_headers, key)) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert sum(1 for r in responses if r.status_code == 201 and r.json()["owner_token"]) == 1
    assert await _workspaces_with_slug(admin_engine, body["slug"]) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
async def test_malformed_keys_are_refused(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, key: str
) -> None:
    body = workspace_body()
    headers = {**admin_headers, "Idempotency-Key": key}
    response = await client.post(WORKSPACES, json=body, headers={k: v.encode("utf-8") for k, v in headers.items()})
    assert response.status_code == 400, response.text
    assert await _workspaces_with_slug(admin_engine, body["slug"]) == 0


async def test_a_key_left_in_flight_by_a_crashed_process_is_taken_over(
    client: Client, admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings
) -> None:
    issued, token_id = await issue_admin_token(app_engine, settings, "crashed")
    key = f"create-{uuid.uuid4()}"
    body = workspace_body()
    fingerprint = request_fingerprint("POST", WORKSPACES, b"", msgspec.json.encode(body))
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO public.admin_idempotency_keys (admin_token_id, key, request_fingerprint, created_at, "
                "expires_at) VALUES (:t, :k, :f, now() - interval '6 minutes', now() + interval '1 day')"
            ),
            {"t": token_id, "k": key, "f": fingerprint},
        )
    response = await client.post(WORKSPACES, json=body, headers=_idem(bearer(issued.token), key))
    assert response.status_code == 201, response.text
    assert response.json()["owner_token"]
    assert (await _key_rows(admin_engine, key))[0][0] == 201
