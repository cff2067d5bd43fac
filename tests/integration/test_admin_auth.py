"""Admin power needs an admin token; a tenant token never reaches /admin, an admin token never /v1."""

from __future__ import annotations

import re
import uuid

import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.settings import Settings
from tests.support import (
    WORKSPACES,
    Client,
    Tenant,
    add_products,
    bearer,
    create_workspace,
    issue_admin_token,
    revoke_admin_token,
    snapshot_all,
    snapshot_rows,
    workspace_row,
)


def admin_routes(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, concrete path) the app serves under /admin, path parameters filled in."""
    routes = []
    for route in app.routes:
        if not route.path.startswith("/admin/"):
            continue
        path = re.sub(r"\{[a-z_]+_id:str\}", str(uuid.uuid4()), route.path)
        path = re.sub(r"\{[a-z_]+:str\}", "products", path)
        routes.extend((method, path) for method in sorted(route.methods - {"OPTIONS", "HEAD"}))
    return routes


async def _unauthenticated(client: Client) -> tuple[int, bytes, str | None]:
    response = await client.get(WORKSPACES)
    return response.status_code, response.content, response.headers.get("www-authenticate")


def test_the_admin_surface_has_the_expected_routes(app: Litestar) -> None:
    found = {(method, re.sub(r"[0-9a-f-]{36}", "{id}", path)) for method, path in admin_routes(app)}
    assert found == {
        ("GET", "/admin/v1/audit-events"),
        ("GET", WORKSPACES),
        ("POST", WORKSPACES),
        ("GET", f"{WORKSPACES}/{{id}}"),
        ("PATCH", f"{WORKSPACES}/{{id}}"),
        ("POST", f"{WORKSPACES}/{{id}}/suspend"),
        ("POST", f"{WORKSPACES}/{{id}}/reactivate"),
        ("POST", f"{WORKSPACES}/{{id}}/schedule-deletion"),
        ("POST", f"{WORKSPACES}/{{id}}/restore"),
        ("POST", f"{WORKSPACES}/{{id}}/purge"),
        ("GET", f"{WORKSPACES}/{{id}}/usage"),
        ("GET", f"{WORKSPACES}/{{id}}/plan"),
        ("PATCH", f"{WORKSPACES}/{{id}}/plan"),
        ("GET", f"{WORKSPACES}/{{id}}/export"),
        ("GET", f"{WORKSPACES}/{{id}}/export/products"),
        ("GET", f"{WORKSPACES}/{{id}}/snapshot"),
    }


def test_every_admin_route_is_guarded_and_named(app: Litestar) -> None:
    for route in app.routes:
        if not route.path.startswith("/admin/"):
            continue
        for handler in route.route_handlers:  # type: ignore[union-attr]
            if "OPTIONS" in handler.http_methods:
                continue
            assert "requires_admin" in {g.__name__ for g in handler.guards or []}, handler
            assert handler.operation_id, handler


async def test_every_admin_route_refuses_no_token_a_tenant_token_and_a_revoked_admin_token(
    app: Litestar,
    client: Client,
    tenant_a: Tenant,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    issued, token_id = await issue_admin_token(app_engine, settings, "soon revoked")
    assert await revoke_admin_token(app_engine, settings, token_id)
    expected = await _unauthenticated(client)
    assert expected[0] == 401
    assert expected[2] is not None

    for method, path in admin_routes(app):
        for headers in ({}, tenant_a.headers, bearer(issued.token), {"Authorization": "Bearer tna_junk"}):
            response = await client.request(method, path, headers=headers, json={} if method != "GET" else None)
            got = (response.status_code, response.content, response.headers.get("www-authenticate"))
            assert got == expected, (method, path, headers)


@pytest.mark.parametrize("target", ["own", "other"])
async def test_a_tenant_token_cannot_reach_any_workspace_through_admin_routes(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, admin_engine: AsyncEngine, target: str
) -> None:
    victim = tenant_a if target == "own" else tenant_b
    await add_products(client, victim.token, 1)
    before = (await workspace_row(admin_engine, victim.id), await snapshot_all(admin_engine, victim.id))
    expected = await _unauthenticated(client)
    for method, path, body in [
        ("POST", WORKSPACES, {"slug": "stolen", "name": "x", "owner_email": "x@example.com"}),
        ("GET", f"{WORKSPACES}/{victim.id}", None),
        ("GET", f"{WORKSPACES}/{victim.id}/export/products", None),
        ("GET", f"{WORKSPACES}/{victim.id}/snapshot", None),
        ("POST", f"{WORKSPACES}/{victim.id}/suspend", None),
        ("PATCH", f"{WORKSPACES}/{victim.id}", {"max_token_lifetime_days": 1}),
        ("POST", f"{WORKSPACES}/{victim.id}/schedule-deletion", {"purge_after_days": 1}),
        ("POST", f"{WORKSPACES}/{victim.id}/purge", {"confirm_slug": victim.workspace.slug}),
    ]:
        response = await client.request(method, path, headers=tenant_a.headers, json=body)
        assert (response.status_code, response.content, response.headers.get("www-authenticate")) == expected
    assert (await workspace_row(admin_engine, victim.id), await snapshot_all(admin_engine, victim.id)) == before
    async with admin_engine.connect() as connection:
        stolen = await connection.execute(text("SELECT count(*) FROM public.workspaces WHERE slug = 'stolen'"))
        assert stolen.scalar_one() == 0


# A fixed id, not uuid4(): every xdist worker must collect the same test names.
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/products"), ("POST", "/v1/products"), ("GET", "/v1/products/0190a8c2-4a7e-7a1b-9c3d-5e6f70819203")],
)
async def test_an_admin_token_is_refused_on_tenant_routes_like_no_token(
    client: Client, admin_headers: dict[str, str], method: str, path: str
) -> None:
    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "A-1"} if method == "POST" else None
    anonymous = await client.request(method, path, json=body)
    as_admin = await client.request(method, path, headers=admin_headers, json=body)
    assert anonymous.status_code == 401
    assert (as_admin.status_code, as_admin.content, as_admin.headers.get("www-authenticate")) == (
        anonymous.status_code,
        anonymous.content,
        anonymous.headers.get("www-authenticate"),
    )


async def test_an_admin_token_never_acts_as_the_tenant_it_created(
    client: Client, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    created = await create_workspace(client, admin_headers)
    workspace_id = uuid.UUID(created["workspace"]["id"])
    before = await snapshot_rows(admin_engine, "products", workspace_id)
    body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": "ADMIN-1"}
    response = await client.post("/v1/products", json=body, headers=admin_headers)
    assert response.status_code == 401
    assert await snapshot_rows(admin_engine, "products", workspace_id) == before
