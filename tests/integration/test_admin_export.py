"""Export (JSON Lines per table, read back exactly) and usage."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.settings import Settings
from tenantry.tenancy.session import platform_session_factory
from tenantry.workspaces.export import WorkspaceExporter
from tenantry.workspaces.tables import exported_tables, tenant_table, tenant_tables
from tests.support import (
    WORKSPACES,
    Client,
    Tenant,
    add_products,
    bearer,
    create_workspace,
    ground_truth,
    read_back,
    snapshot_rows,
)


async def _populated_workspace(client: Client, admin_headers: dict[str, str]) -> dict[str, Any]:
    created = await create_workspace(
        client, admin_headers, metadata={"nested": {"list": [1, 2.5, None, True]}, "emoji": "\u00e9\u2603"}
    )
    token = created["owner_token"]
    products = await add_products(client, token, 3)
    await client.patch(
        f"/v1/products/{products[0]['id']}", json={"description": 'line\nbreak "quoted"'}, headers=bearer(token)
    )
    await client.delete(f"/v1/products/{products[1]['id']}", headers=bearer(token))
    return created


async def test_export_streams_every_table_in_a_form_that_reads_back_exactly(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await _populated_workspace(client, admin_headers)
    workspace_id = uuid.UUID(created["workspace"]["id"])

    manifest_response = await client.get(f"{WORKSPACES}/{workspace_id}/export", headers=admin_headers)
    assert manifest_response.status_code == 200, manifest_response.text
    manifest = manifest_response.json()
    assert manifest["workspace"]["id"] == str(workspace_id)
    assert {t["name"] for t in manifest["tables"]} == {t.name for t in exported_tables()}

    for entry in manifest["tables"]:
        table = tenant_table(entry["name"])
        assert table is not None
        response = await client.get(entry["href"], headers=admin_headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/jsonl")
        lines = response.content.decode().splitlines()
        exported = [read_back(table, msgspec.json.decode(line)) for line in lines]
        assert exported == await ground_truth(admin_engine, table, workspace_id), entry["name"]
        if entry["name"] != "audit_events":  # the export itself is audited, so that log grows meanwhile
            assert len(lines) == entry["rows"]
    products = tenant_table("products")
    assert products is not None
    assert len(await ground_truth(admin_engine, products, workspace_id)) == 3


async def test_export_never_contains_token_digests(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id = created["workspace"]["id"]
    response = await client.get(f"{WORKSPACES}/{workspace_id}/export/personal_access_tokens", headers=admin_headers)
    assert response.status_code == 200
    [line] = [msgspec.json.decode(x) for x in response.content.splitlines()]
    assert "token_digest" not in line
    assert line["display_prefix"] == created["owner_token"][:8]
    async with admin_engine.connect() as connection:
        digest = (
            await connection.execute(
                text("SELECT encode(token_digest, 'base64') FROM public.personal_access_tokens WHERE tenant_id = :w"),
                {"w": workspace_id},
            )
        ).scalar_one()
    assert digest.replace("\n", "") not in response.text
    assert created["owner_token"] not in response.text


async def test_export_covers_only_the_requested_workspace(
    client: Client, admin_headers: dict[str, str], tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await add_products(client, tenant_a.token, 2)
    await add_products(client, tenant_b.token, 2)
    response = await client.get(f"{WORKSPACES}/{tenant_a.id}/export/products", headers=admin_headers)
    tenants = {msgspec.json.decode(line)["tenant_id"] for line in response.content.splitlines()}
    assert tenants == {str(tenant_a.id)}


@pytest.mark.parametrize("table", ["users", "workspaces", "admin_tokens", "nope", "products.jsonl", "idempotency_keys"])
async def test_export_of_an_unknown_or_global_table_is_404(
    client: Client, admin_headers: dict[str, str], tenant_a: Tenant, table: str
) -> None:
    response = await client.get(f"{WORKSPACES}/{tenant_a.id}/export/{table}", headers=admin_headers)
    reference = await client.get(f"{WORKSPACES}/{uuid.uuid4()}", headers=admin_headers)
    assert response.status_code == 404
    assert response.content == reference.content


async def test_the_exporter_pages_through_tables_larger_than_a_batch(
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
) -> None:
    await add_products(client, tenant_a.token, 7)
    table = tenant_table("products")
    assert table is not None
    exporter = WorkspaceExporter(platform_session_factory(app_engine, settings), batch_size=2)
    chunks = [chunk async for chunk in exporter.stream(tenant_a.id, table)]
    assert len(chunks) == 4  # 2 + 2 + 2 + 1
    lines = b"".join(chunks).splitlines()
    exported = [read_back(table, msgspec.json.decode(line)) for line in lines]
    assert exported == await ground_truth(admin_engine, table, tenant_a.id)


async def test_a_purged_workspace_has_nothing_to_export(client: Client, admin_headers: dict[str, str]) -> None:
    workspace = (await create_workspace(client, admin_headers))["workspace"]
    await client.post(f"{WORKSPACES}/{workspace['id']}/schedule-deletion", headers=admin_headers)
    await client.post(
        f"{WORKSPACES}/{workspace['id']}/purge", json={"confirm_slug": workspace["slug"]}, headers=admin_headers
    )
    assert (await client.get(f"{WORKSPACES}/{workspace['id']}/export", headers=admin_headers)).status_code == 409
    assert (
        await client.get(f"{WORKSPACES}/{workspace['id']}/export/products", headers=admin_headers)
    ).status_code == 409


async def test_usage_counts_members_tokens_and_rows(
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    tenant_b: Tenant,
    provisioning,  # type: ignore[no-untyped-def]
) -> None:
    await add_products(client, tenant_a.token, 4)
    await add_products(client, tenant_b.token, 1)
    membership = tenant_a.workspace.owner_membership_id
    _, revoked_id = await provisioning.issue_token(tenant_a.id, membership, name="revoked")
    await provisioning.revoke_token(tenant_a.id, revoked_id)
    await provisioning.issue_token(tenant_a.id, membership, name="live")
    _, expired_id = await provisioning.issue_token(tenant_a.id, membership, name="expired")
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.personal_access_tokens SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": expired_id},
        )
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.get(f"{WORKSPACES}/{tenant_a.id}/usage", headers=admin_headers)
    assert response.status_code == 200, response.text
    usage = response.json()
    assert usage["members"] == {"total": 1, "active": 1}
    assert usage["tokens"] == {"total": 4, "active": 2}  # the first owner token and "live"
    assert usage["rows"]["products"] == 4
    assert usage["rows"]["memberships"] == 1
    assert usage["rows"]["personal_access_tokens"] == 4
    assert set(usage["rows"]) == {t.name for t in tenant_tables()}
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_usage_counts_inactive_members_apart(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    async with admin_engine.begin() as connection:
        user_id = (
            await connection.execute(
                text("INSERT INTO public.users (email) VALUES (:e) RETURNING id"), {"e": f"{uuid.uuid4().hex}@x.org"}
            )
        ).scalar_one()
        await connection.execute(
            text(
                "INSERT INTO public.memberships (tenant_id, user_id, role, is_active) VALUES (:t, :u, 'viewer', false)"
            ),
            {"t": tenant_a.id, "u": user_id},
        )
    usage = (await client.get(f"{WORKSPACES}/{tenant_a.id}/usage", headers=admin_headers)).json()
    assert usage["members"] == {"total": 2, "active": 1}


# -- one point-in-time snapshot (issue 14) ------------------------------------------------------


async def _with_idempotency_key(client: Client, tenant: Tenant) -> None:
    """A stored idempotent answer in the workspace: an internal cache the export must leave out."""
    body = {"name": "cached", "price_cents": 1, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
    headers = {**bearer(tenant.token), "Idempotency-Key": f"export-{uuid.uuid4().hex}"}
    assert (await client.post("/v1/products", json=body, headers=headers)).status_code == 201


async def test_rows_written_after_the_snapshot_began_are_not_exported(
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    """Each batch used to be a transaction of its own, so rows written between two batches were
    exported. Now one REPEATABLE READ, READ ONLY transaction serves the whole stream."""
    await add_products(client, tenant_a.token, 3)
    table = tenant_table("products")
    assert table is not None
    before = await ground_truth(admin_engine, table, tenant_a.id)
    others = await snapshot_rows(admin_engine, "products", tenant_b.id)
    exporter = WorkspaceExporter(platform_session_factory(app_engine, settings), batch_size=2)
    stream = exporter.stream(tenant_a.id, table)
    first = await anext(stream)  # the snapshot is taken: the transaction has read
    await add_products(client, tenant_a.token, 3)  # committed meanwhile, with later (uuid7) ids
    await client.delete(f"/v1/products/{before[-1]['id']}", headers=bearer(tenant_a.token))
    rest = [chunk async for chunk in stream]
    exported = [read_back(table, msgspec.json.decode(line)) for line in b"".join([first, *rest]).splitlines()]
    assert exported == before
    now = await ground_truth(admin_engine, table, tenant_a.id)
    assert len(now) == 6  # all committed: 3 more, and one of the first 3 deleted (a soft delete)
    assert now[:3] != before
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == others


async def test_the_snapshot_transaction_is_repeatable_read_and_read_only(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    exporter = WorkspaceExporter(platform_session_factory(app_engine, settings))
    async with exporter.snapshot(tenant_a.id) as snapshot:
        isolation = (await snapshot.session.execute(text("SHOW transaction_isolation"))).scalar_one()
        read_only = (await snapshot.session.execute(text("SHOW transaction_read_only"))).scalar_one()
        tenant = (await snapshot.session.execute(text("SELECT current_setting('app.tenant_id')"))).scalar_one()
    assert (isolation, read_only, tenant) == ("repeatable read", "on", str(tenant_a.id))


async def test_the_snapshot_export_is_every_table_at_one_instant_without_caches(
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
) -> None:
    await add_products(client, tenant_a.token, 2)
    await _with_idempotency_key(client, tenant_a)
    async with admin_engine.connect() as connection:
        cached = (
            await connection.execute(
                text("SELECT count(*) FROM public.idempotency_keys WHERE tenant_id = :t"), {"t": tenant_a.id}
            )
        ).scalar_one()
    assert cached == 1

    response = await client.get(f"{WORKSPACES}/{tenant_a.id}/snapshot", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    header, *lines = [msgspec.json.decode(line) for line in response.content.splitlines()]
    assert header["workspace"]["id"] == str(tenant_a.id)
    counts = {entry["name"]: entry["rows"] for entry in header["tables"]}
    assert list(counts) == [t.name for t in exported_tables()]
    assert "idempotency_keys" not in counts
    assert {line["table"] for line in lines} <= set(counts)
    for table in exported_tables():
        rows = [read_back(table, line["row"]) for line in lines if line["table"] == table.name]
        assert len(rows) == counts[table.name], table.name  # counts and rows from the same snapshot
        assert rows == await ground_truth(admin_engine, table, tenant_a.id), table.name
    assert b"idempotency" not in response.content

    # The same through the exporter, with a write between the header and the rows.
    exporter = WorkspaceExporter(platform_session_factory(app_engine, settings), batch_size=1)
    stream = exporter.stream_all(tenant_a.id, {})
    first = msgspec.json.decode(await anext(stream))
    await add_products(client, tenant_a.token, 2)
    later = [msgspec.json.decode(line) for chunk in [c async for c in stream] for line in chunk.splitlines()]
    products = [line for line in later if line["table"] == "products"]
    assert len(products) == {e["name"]: e["rows"] for e in first["tables"]}["products"] == 3
