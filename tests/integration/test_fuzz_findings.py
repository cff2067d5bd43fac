"""Regressions for what the Schemathesis fuzz (tests/fuzz) found: each test is one real defect.

The document promised something the app did not do (or the reverse); both sides are checked
here with plain requests, so a regression shows up without running the fuzzer.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.support import Tenant, create_product, serve

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    ref = next((branch for branch in ref.get("oneOf", [ref]) if "$ref" in branch), ref)
    return dict(document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]])


async def test_options_allow_lists_every_method_of_the_path(app: Litestar, client: Client, tenant_a: Tenant) -> None:
    # Litestar 2 answered `Allow: OPTIONS, POST` for /v1/lookups, which also serves GET.
    checked = 0
    for route in app.routes:
        # OPTIONS is authenticated like any request: the tenant token answers for /v1 paths.
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/") or route.path.startswith("/v1/auth"):
            continue
        path = route.path.replace(":str}", "}").format_map({p: str(uuid.uuid4()) for p in route.path_parameters})
        response = await client.options(path, headers=tenant_a.headers)
        assert response.status_code == 204, (route.path, response.text)
        # HEAD is answered wherever GET is (http/edge.py).
        methods = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        assert response.headers["allow"] == ", ".join(sorted(methods)), route.path
        checked += 1
    assert checked > 15
    response = await client.options("/v1/lookups", headers=tenant_a.headers)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


async def test_options_allow_is_right_in_every_app_of_a_process(settings: Settings, tenant_a: Tenant) -> None:
    # The header fix once lived on the app class, mapping the first app's handlers only: a second
    # app in the same process (here, and the fuzzer's in the full suite) answered `OPTIONS, POST`.
    for _ in range(2):
        async with serve(create_app(settings)) as client:
            response = await client.options("/v1/lookups", headers=tenant_a.headers)
        assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_bodies_that_refuse_unknown_properties_say_so(document: dict[str, Any], client: Client) -> None:
    # The document allowed extra properties that the app answers 422 to.
    schema = body_schema(document, "/v1/products", "post")
    assert schema["additionalProperties"] is False
    assert body_schema(document, "/v1/products/{product_id}", "patch")["additionalProperties"] is False
    assert body_schema(document, "/admin/v1/workspaces", "post")["additionalProperties"] is False
    response = await client.post(
        "/v1/auth/token", json={"workspace": "acme", "email": "a@example.com", "password": "x" * 12, "extra": 1}
    )
    assert response.status_code == 422
    assert "unknown field" in response.json()["errors"][0]["message"]


async def test_an_optional_body_is_not_documented_as_required(
    document: dict[str, Any], client: Client, admin_headers: dict[str, str], tenant_a: Tenant
) -> None:
    # schedule-deletion, purge and rotate take no body at all; the document said one was required.
    for path, method in [
        ("/admin/v1/workspaces/{workspace_id}/schedule-deletion", "post"),
        ("/admin/v1/workspaces/{workspace_id}/purge", "post"),
        ("/v1/tokens/{token_id}/rotate", "post"),
    ]:
        assert document["paths"][path][method]["requestBody"]["required"] is False, path
    assert document["paths"]["/v1/products"]["post"]["requestBody"]["required"] is True
    response = await client.post(f"/admin/v1/workspaces/{tenant_a.id}/schedule-deletion", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending_deletion"


async def test_patch_bodies_keep_a_lower_bound_of_zero(
    document: dict[str, Any], client: Client, tenant_a: Tenant
) -> None:
    # Litestar dropped `ge=0` on fields that may be UNSET, so `position: -1` looked valid in a PATCH.
    position = body_schema(document, "/v1/lookups/{lookup_id}", "patch")["properties"]["position"]
    assert [branch["minimum"] for branch in position["oneOf"]] == [0]
    price = body_schema(document, "/v1/products/{product_id}", "patch")["properties"]["price_cents"]
    assert [branch["minimum"] for branch in price["oneOf"]] == [0]
    product = await create_product(client, tenant_a)
    response = await client.patch(f"/v1/products/{product['id']}", json={"price_cents": -1}, headers=tenant_a.headers)
    assert response.status_code == 422


async def test_token_permissions_document_their_resources_and_levels(
    document: dict[str, Any], client: Client, tenant_a: Tenant
) -> None:
    # The map was documented as any string to any string; the service takes known ones only.
    permissions = body_schema(document, "/v1/tokens", "post")["properties"]["permissions"]
    (branch,) = [b for b in permissions["oneOf"] if b.get("type") == "object"]
    assert set(branch["propertyNames"]["enum"]) == {
        "products",
        "members",
        "tokens",
        "audit_events",
        "lookups",
        "orders",
    }
    assert branch["additionalProperties"] == {"enum": ["none", "read", "write"]}
    response = await client.post(
        "/v1/tokens", json={"name": "t", "permissions": {"nonsense": "read"}}, headers=tenant_a.headers
    )
    assert response.status_code == 422


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-1", "2026-01-15"])
async def test_audit_time_filters_refuse_anything_but_rfc_3339(client: Client, tenant_a: Tenant, value: str) -> None:
    # `until=0.5` was read as a Unix timestamp (1970-01-01T00:00:00.5Z) and answered 200.
    response = await client.get("/v1/audit-events", params={"until": value}, headers=tenant_a.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "until"


async def test_audit_time_filters_still_take_rfc_3339(client: Client, tenant_a: Tenant) -> None:
    for value in ("2026-01-15T09:30:00Z", "2026-01-15T09:30:00+02:00", "2026-01-15T09:30:00"):
        response = await client.get("/v1/audit-events", params={"since": value}, headers=tenant_a.headers)
        assert response.status_code == 200, (value, response.text)
