"""Workspace plans: platform admins set a workspace's own limits (API and CLI), audited, in force
on the workspace's next request, and out of reach of tenant tokens."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry import cli
from tenantry.settings import ENVIRONMENT, Settings
from tests.support import Tenant, auth_changes_delivered, platform_events, tenant_events
from tests.support.limits import ROOMY, header_items, limited_app, limited_settings, set_plan

PRODUCTS = "/v1/products"


class Run(msgspec.Struct):
    code: int
    out: str
    err: str


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings):  # type: ignore[no-untyped-def]
    """`tenantry <args>` with the test database in its environment, as from a shell (own event loop)."""
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TENANTRY_TOKEN_PEPPER", settings.token_pepper)
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", settings.app_password)

    async def invoke(*args: str) -> Run:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return invoke


def plan_path(tenant: Tenant) -> str:
    return f"/admin/v1/workspaces/{tenant.id}/plan"


async def test_an_admin_plan_applies_on_the_workspaces_next_request_and_is_audited(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    async with limited_app(settings) as (_, client):
        before = await client.get(PRODUCTS, headers=tenant_a.headers)  # caches A's principal, no plan
        assert header_items(before.headers["RateLimit-Policy"])["token"]["q"] == str(ROOMY["limit_token_requests"])
        shown = await client.get(plan_path(tenant_a), headers=admin_headers)
        assert shown.status_code == 200
        assert shown.json()["plan"]["token_requests"] is None
        assert shown.json()["effective"]["token_requests"] == ROOMY["limit_token_requests"]
        assert shown.json()["updated_at"] is None

        changed = await client.patch(
            plan_path(tenant_a), json={"token_requests": 2, "token_window_s": 60}, headers=admin_headers
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["plan"]["token_requests"] == 2
        assert changed.json()["effective"]["token_window_s"] == 60
        assert changed.json()["effective"]["workspace_requests"] == ROOMY["limit_workspace_requests"]

        served = [await client.get(PRODUCTS, headers=tenant_a.headers) for _ in range(2)]
        assert [s.status_code for s in served] == [200, 200]
        assert header_items(served[0].headers["RateLimit-Policy"])["token"] == {"q": "2", "w": "60"}
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 429
        # B's limits are its own.
        assert [(await client.get(PRODUCTS, headers=tenant_b.headers)).status_code for _ in range(3)] == [200] * 3

        reset = await client.patch(plan_path(tenant_a), json={"token_requests": None}, headers=admin_headers)
        assert reset.json()["plan"]["token_requests"] is None
        assert reset.json()["plan"]["token_window_s"] == 60
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200

    assert await platform_events(admin_engine, tenant_a.id) == ["workspace.plan_changed"] * 2
    assert ("workspace.plan_changed", "admin") in await tenant_events(admin_engine, tenant_a.id)
    assert "workspace.plan_changed" not in await platform_events(admin_engine, tenant_b.id)


async def test_plan_limits_are_checked_and_admin_only(
    client: AsyncTestClient[Litestar], tenant_a: Tenant, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    for body in ({"token_requests": 0}, {"workspace_window_s": 3601}, {"token_concurrency": "5"}, {"tenant_id": 1}):
        refused = await client.patch(plan_path(tenant_a), json=body, headers=admin_headers)
        assert refused.status_code == 422, (body, refused.text)
    assert (
        await client.patch(plan_path(tenant_a), json={"token_requests": 5}, headers=tenant_a.headers)
    ).status_code == 401
    assert (await client.get(plan_path(tenant_a), headers=tenant_a.headers)).status_code == 401
    missing = await client.get("/admin/v1/workspaces/00000000-0000-7000-8000-000000000000/plan", headers=admin_headers)
    assert missing.status_code == 404
    assert await platform_events(admin_engine, tenant_a.id) == []


async def test_a_plan_changed_elsewhere_reaches_a_process_that_cached_the_token(
    settings: Settings, tenant_a: Tenant, admin_engine: AsyncEngine
) -> None:
    """Another process (or SQL by hand) changes the plan: the trigger's NOTIFY evicts the cached
    principal, so this process applies the new plan on the next request, not after the TTL."""
    app_settings = limited_settings(settings)
    assert app_settings.auth_cache_ttl_s > 0
    async with limited_app(settings) as (app, client):
        await asyncio.wait_for(app.state.auth_listener.subscribed.wait(), 10)  # the cache serves from now on
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        assert len(app.state.principal_cache) == 1  # A's principal, with its (empty) plan, is cached
        await set_plan(admin_engine, tenant_a.id, token_requests=1, token_window_s=60)
        await auth_changes_delivered(app)
        served = await client.get(PRODUCTS, headers=tenant_a.headers)
        assert header_items(served.headers["RateLimit-Policy"])["token"] == {"q": "1", "w": "60"}
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 429


async def test_the_cli_shows_sets_and_resets_a_plan(
    run,  # type: ignore[no-untyped-def]
    settings: Settings,
    tenant_a: Tenant,
    admin_engine: AsyncEngine,
) -> None:
    slug = tenant_a.workspace.slug
    shown: Run = await run("admin", "workspace", "plan", slug)
    assert shown.code == 0, shown.err
    assert "token_requests: 100 (default)" in shown.out

    changed: Run = await run(
        "admin",
        "workspace",
        "plan",
        slug,
        "--token-requests",
        "1",
        "--token-window-s",
        "60",
        "--workspace-concurrency",
        "3",
    )
    assert changed.code == 0, changed.err
    assert "token_requests: 1\n" in changed.out
    assert "workspace_concurrency: 3\n" in changed.out
    async with limited_app(settings) as (_, client):
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 200
        assert (await client.get(PRODUCTS, headers=tenant_a.headers)).status_code == 429

    partly: Run = await run("admin", "workspace", "plan", slug, "--token-requests", "default")
    assert "token_requests: 100 (default)" in partly.out
    assert "token_window_s: 60\n" in partly.out
    reset: Run = await run("admin", "--json", "workspace", "plan", slug, "--reset")
    assert reset.code == 0, reset.err
    assert '"token_window_s": null' in reset.out
    bad: Run = await run("admin", "workspace", "plan", slug, "--token-requests", "0")
    assert bad.code == 2
    assert "invalid value" in bad.err

    events = await platform_events(admin_engine, tenant_a.id)
    assert events == ["workspace.plan_changed"] * 3
