"""`tenantry admin ...`: the CLI drives the same services as /admin/v1, against the real database."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import cli
from tenantry.settings import ENVIRONMENT, Settings
from tenantry.users.passwords import verify_password
from tenantry.workspaces.tables import exported_tables, tenant_table
from tests.support import (
    WORKSPACES,
    Client,
    Tenant,
    add_products,
    bearer,
    count_rows,
    ground_truth,
    platform_events,
    read_back,
    snapshot_all,
    snapshot_rows,
    tenant_events,
    unique_slug,
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TENANTRY_TOKEN_PEPPER", settings.token_pepper)
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", settings.app_password)


class Run(msgspec.Struct):
    code: int
    out: str
    err: str


@pytest.fixture
def run(environment: None, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `tenantry <args>` (in a thread: the command runs its own event loop, as from a shell)."""

    async def invoke(*args: str) -> Run:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return invoke


def _field(output: str, name: str) -> str:
    match = re.search(rf"^{name}: (\S+)", output, re.MULTILINE)
    assert match, output
    return match.group(1)


async def _create(run, slug: str | None = None, *extra: str) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    slug = slug or unique_slug("cli")
    result = await run(
        "admin",
        "workspace",
        "create",
        "--slug",
        slug,
        "--name",
        f"CLI {slug}",
        "--owner-email",
        f"{slug}@example.com",
        *extra,
    )
    assert result.code == 0, result.err
    return _field(result.out, "id"), slug, _field(result.out, "owner_token")


async def test_admin_token_create_prints_a_working_token_once_and_revoke_kills_it(
    run,
    client: Client,
    admin_engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    created = await run("admin", "token", "create", "--name", "ops laptop", "--days", "7")
    assert created.code == 0, created.err
    token = _field(created.out, "token")
    token_id = _field(created.out, "id")
    assert token.startswith("tna_")
    assert created.out.count(token) == 1
    assert (await client.get(WORKSPACES, headers=bearer(token))).status_code == 200
    async with admin_engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT a::text FROM public.admin_tokens a WHERE id = :id"), {"id": token_id})
        ).scalar_one()
        actor = (
            await connection.execute(
                text(
                    "SELECT actor FROM public.platform_audit_events WHERE action = 'admin_token.created' "
                    "AND details->>'target_id' = :id"
                ),
                {"id": token_id},
            )
        ).scalar_one()
    assert token not in stored
    assert actor.startswith("cli:")

    revoked = await run("admin", "token", "revoke", token_id)
    assert revoked.code == 0, revoked.err
    assert (await client.get(WORKSPACES, headers=bearer(token))).status_code == 401
    again = await run("admin", "token", "revoke", token_id)
    assert again.code == 2
    assert len(again.err.strip().splitlines()) == 1


async def test_workspace_create_show_list_and_usage(run, client: Client) -> None:  # type: ignore[no-untyped-def]
    workspace_id, slug, owner_token = await _create(run, None, "--external-id", f"ext-{uuid.uuid4().hex}")
    assert owner_token.startswith("tnt_")
    assert (await client.get("/v1/products", headers=bearer(owner_token))).status_code == 200
    await add_products(client, owner_token, 2)

    by_slug = await run("admin", "workspace", "show", slug)
    by_id = await run("admin", "workspace", "show", workspace_id)
    assert by_slug.code == by_id.code == 0
    assert by_slug.out == by_id.out
    assert _field(by_slug.out, "status") == "active"
    assert owner_token not in by_slug.out

    shown = await run("admin", "--json", "workspace", "show", slug)
    assert json.loads(shown.out)["id"] == workspace_id

    listed = await run("admin", "workspace", "list", "--status", "active")
    assert listed.code == 0
    assert workspace_id in listed.out
    suspended_only = await run("admin", "workspace", "list", "--status", "suspended")
    assert workspace_id not in suspended_only.out

    usage = await run("admin", "--json", "workspace", "usage", slug)
    assert usage.code == 0, usage.err
    numbers = json.loads(usage.out)
    assert numbers["members"] == {"total": 1, "active": 1}
    assert numbers["tokens"]["active"] == 1
    assert numbers["rows"]["products"] == 2


async def test_lifecycle_commands_drive_the_workspace_and_are_audited(
    run,
    client: Client,
    admin_engine: AsyncEngine,  # type: ignore[no-untyped-def]
) -> None:
    workspace_id, slug, owner_token = await _create(run)
    await add_products(client, owner_token, 3)

    assert (await run("admin", "workspace", "suspend", slug)).code == 0
    refused = await client.get("/v1/products", headers=bearer(owner_token))
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("workspace-suspended")
    assert (await run("admin", "workspace", "reactivate", slug)).code == 0
    assert (await client.get("/v1/products", headers=bearer(owner_token))).status_code == 200

    assert (await run("admin", "workspace", "schedule-deletion", slug, "--days", "3")).code == 0
    assert (await run("admin", "workspace", "restore", slug)).code == 0
    assert (await run("admin", "workspace", "schedule-deletion", slug)).code == 0

    early = await run("admin", "workspace", "purge", slug)
    assert early.code == 2
    assert len(early.err.strip().splitlines()) == 1
    before = await count_rows(admin_engine, workspace_id)
    purged = await run("admin", "--json", "workspace", "purge", slug, "--confirm-slug", slug)
    assert purged.code == 0, purged.err
    assert json.loads(purged.out)["deleted"] == before
    assert sum((await count_rows(admin_engine, workspace_id)).values()) == 0

    assert await platform_events(admin_engine, workspace_id) == [
        "workspace.created",
        "workspace.suspended",
        "workspace.reactivated",
        "workspace.deletion_scheduled",
        "workspace.restored",
        "workspace.deletion_scheduled",
        "workspace.purged",
    ]
    async with admin_engine.connect() as connection:
        actors = set(
            (
                await connection.execute(
                    text("SELECT actor FROM public.platform_audit_events WHERE workspace_id = :w"), {"w": workspace_id}
                )
            ).scalars()
        )
    assert len(actors) == 1
    assert actors.pop().startswith("cli:")


async def test_purge_due_purges_only_what_is_due(
    run,
    client: Client,
    admin_engine: AsyncEngine,
    tenant_b: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    due_id, due_slug, _ = await _create(run)
    later_id, later_slug, _ = await _create(run)
    for slug in (due_slug, later_slug):
        assert (await run("admin", "workspace", "schedule-deletion", slug)).code == 0
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET purge_after = now() - interval '1 hour' WHERE id = :id"), {"id": due_id}
        )
    later_before = await snapshot_all(admin_engine, uuid.UUID(later_id))
    b_before = await snapshot_all(admin_engine, tenant_b.id)

    result = await run("admin", "workspace", "purge-due")
    assert result.code == 0, result.err
    assert due_slug in result.out
    assert later_slug not in result.out
    statuses = {w: (await run("admin", "--json", "workspace", "show", w)).out for w in (due_slug, later_slug)}
    assert json.loads(statuses[due_slug])["status"] == "purged"
    assert json.loads(statuses[later_slug])["status"] == "pending_deletion"
    assert await snapshot_all(admin_engine, uuid.UUID(later_id)) == later_before
    assert await snapshot_all(admin_engine, tenant_b.id) == b_before


async def test_export_writes_a_file_per_table_that_reads_back_exactly(
    run,
    client: Client,
    admin_engine: AsyncEngine,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    workspace_id, slug, owner_token = await _create(run, None, "--metadata", '{"tier": "gold"}')
    await add_products(client, owner_token, 5)
    out = tmp_path / "export"

    result = await run("admin", "workspace", "export", slug, "--out", str(out))
    assert result.code == 0, result.err
    names = {t.name for t in exported_tables()}
    assert "idempotency_keys" not in names  # an internal cache, never exported
    assert {p.name for p in out.iterdir()} == {f"{n}.jsonl" for n in names} | {"manifest.json"}
    progress = [line for line in result.err.splitlines() if " rows -> " in line]
    assert len(progress) == len(names)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["workspace"]["slug"] == slug
    assert manifest["format"] == "application/jsonl"
    for entry in manifest["tables"]:
        table = tenant_table(entry["name"])
        assert table is not None
        lines = (out / entry["href"]).read_bytes().splitlines()
        assert len(lines) == entry["rows"]
        exported = [read_back(table, msgspec.json.decode(line)) for line in lines]
        if entry["name"] == "audit_events":  # later tables' exports were audited after this file was written
            truth = await ground_truth(admin_engine, table, uuid.UUID(workspace_id))
            assert exported == truth[: len(exported)]
        else:
            assert exported == await ground_truth(admin_engine, table, uuid.UUID(workspace_id)), entry["name"]
    assert owner_token not in "".join(p.read_text() for p in out.iterdir())
    assert "token_digest" not in (out / "personal_access_tokens.jsonl").read_text()


async def test_set_password_reads_stdin_hashes_and_audits(
    run,
    admin_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    _, slug, _ = await _create(run)
    email = f"{slug}@example.com"
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    result = await run("admin", "user", "set-password", "--email", email.upper())
    assert result.code == 0, result.err
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT id, password_hash FROM public.users WHERE lower(email) = :e"), {"e": email}
            )
        ).one()
        audited = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM public.platform_audit_events WHERE action = 'user.password_set' "
                    "AND details->>'target_id' = :id"
                ),
                {"id": str(row.id)},
            )
        ).scalar_one()
    assert row.password_hash.startswith("$argon2id$")
    assert (await verify_password(row.password_hash, "correct horse battery staple")).ok
    assert audited == 1


@pytest.mark.parametrize(("stdin", "email_known"), [("short\n", True), ("long enough password\n", False)])
async def test_set_password_refuses_short_passwords_and_unknown_users(
    run,
    admin_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    stdin: str,
    email_known: bool,  # type: ignore[no-untyped-def]
) -> None:
    _, slug, _ = await _create(run)
    email = f"{slug}@example.com" if email_known else f"nobody-{slug}@example.com"
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    result = await run("admin", "user", "set-password", "--email", email)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    async with admin_engine.connect() as connection:
        hashes = (
            (
                await connection.execute(
                    text("SELECT password_hash FROM public.users WHERE lower(email) = :e"), {"e": email}
                )
            )
            .scalars()
            .all()
        )
    assert all(h is None for h in hashes)


@pytest.mark.parametrize(
    "args",
    [
        ("admin", "workspace", "show", "no-such-workspace"),
        ("admin", "workspace", "suspend", str(uuid.uuid4())),
        ("admin", "workspace", "create", "--slug", "Bad Slug", "--name", "x", "--owner-email", "a@b.co"),
        (
            "admin",
            "workspace",
            "create",
            "--slug",
            "ok-slug",
            "--name",
            "x",
            "--owner-email",
            "a@b.co",
            "--metadata",
            "[1]",
        ),
        ("admin", "workspace", "schedule-deletion", "no-such-workspace", "--days", "0"),
        ("admin", "token", "revoke", "not-a-uuid"),
        ("admin", "token", "create", "--name", "x", "--days", "0"),
    ],
)
async def test_errors_print_one_line_and_exit_2(run, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    result = await run(*args)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("tenantry: ")


async def test_missing_secrets_exit_2(
    run,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("TENANTRY_TOKEN_PEPPER")
    result = await run("admin", "workspace", "list")
    assert result.code == 2
    assert "TENANTRY_TOKEN_PEPPER" in result.err


async def test_cli_suspension_changes_no_tenant_data(
    run,
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    await add_products(client, tenant_a.token, 2)
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)
    assert (await run("admin", "workspace", "suspend", str(tenant_a.id))).code == 0
    assert (await client.post("/v1/products", json={}, headers=tenant_a.headers)).status_code == 403
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before
    assert (await run("admin", "workspace", "reactivate", str(tenant_a.id))).code == 0
    assert [a for a, _ in await tenant_events(admin_engine, tenant_a.id)][-2:] == [
        "workspace.suspended",
        "workspace.reactivated",
    ]
