"""The edges of a request that outside probing found (issue 14): each answers a problem, never
routes or authenticates by accident.

- two Authorization headers: 400, whatever their order, before either token is used;
- a control character in a query value: 400 before the database, as the OpenAPI document says;
- HEAD: answered wherever GET is, as the GET (authentication and isolation included), no body;
- a slash encoded in the path (`%2F`): 404, never another route.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.http.querying import NO_CONTROL_CHARACTERS_PATTERN
from tests.support import PROBLEM, Tenant, create_product, serve, snapshot_rows

PROBLEM_BASE = "https://tenantry.dev/problems/"


def _assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status
    return body


# --- 1. two Authorization headers ------------------------------------------------------------------


@pytest.mark.parametrize("order", ["a-then-b", "b-then-a", "same-twice"])
async def test_two_authorization_headers_are_refused_whatever_their_order(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant, admin_engine: AsyncEngine, order: str
) -> None:
    first, second = {"a-then-b": (tenant_a, tenant_b), "b-then-a": (tenant_b, tenant_a)}.get(
        order, (tenant_a, tenant_a)
    )
    headers = [("Authorization", f"Bearer {first.token}"), ("Authorization", f"Bearer {second.token}")]
    before = {t.id: await snapshot_rows(admin_engine, "products", t.id) for t in (tenant_a, tenant_b)}
    async with serve(fresh_app) as client:
        listed = await client.get("/v1/products", headers=headers)
        created = await client.post(
            "/v1/products",
            headers=[*headers, ("Content-Type", "application/json")],
            content=b'{"name": "Two", "price_cents": 1, "currency": "EUR", "sku": "TWO-1"}',
        )
        alone = await client.get("/v1/products", headers=first.headers)
    for response in (listed, created):
        body = _assert_problem(response, 400, "bad-request")
        assert body["errors"] == [{"field": "Authorization", "message": "is sent more than once"}]
        assert first.token not in response.text
        assert second.token not in response.text
    assert alone.status_code == 200
    # Nothing was written in either workspace.
    assert {t.id: await snapshot_rows(admin_engine, "products", t.id) for t in (tenant_a, tenant_b)} == before


async def test_two_authorization_headers_are_refused_on_admin_paths(
    fresh_app: Litestar, admin_headers: dict[str, str]
) -> None:
    token = admin_headers["Authorization"]
    async with serve(fresh_app) as client:
        twice = await client.get("/admin/v1/workspaces", headers=[("Authorization", token), ("Authorization", token)])
        junk = await client.get("/admin/v1/workspaces", headers=[("Authorization", token), ("Authorization", "x")])
        once = await client.get("/admin/v1/workspaces", headers=admin_headers)
    _assert_problem(twice, 400, "bad-request")
    _assert_problem(junk, 400, "bad-request")
    assert once.status_code == 200


# --- 3. control characters in query values ---------------------------------------------------------

FILTERS = [
    ("/v1/products", "name_prefix"),
    ("/v1/orders", "customer_email"),
    ("/v1/audit-events", "action"),
]
CONTROLS = {"nul": "a\x00b", "del": "a\x7f", "vertical tab": "a\x0bb", "trailing newline": "ada\n", "c1": "\x9b"}


@pytest.mark.parametrize("control", sorted(CONTROLS))
@pytest.mark.parametrize(("path", "name"), FILTERS)
async def test_a_control_character_in_a_filter_is_a_400_before_the_database(
    fresh_app: Litestar, tenant_a: Tenant, path: str, name: str, control: str
) -> None:
    async with serve(fresh_app) as client:
        response = await client.get(path, params={name: CONTROLS[control]}, headers=tenant_a.headers)
        plain = await client.get(path, params={name: "ada"}, headers=tenant_a.headers)
    body = _assert_problem(response, 400, "bad-request")
    assert body["errors"] == [{"field": name, "message": "must not contain control characters"}]
    assert plain.status_code == 200, plain.text


async def test_a_control_character_in_an_admin_filter_is_a_400(
    fresh_app: Litestar, admin_headers: dict[str, str]
) -> None:
    async with serve(fresh_app) as client:
        # `^[a-z0-9_.]+$` alone would let "a\n" through: Python's `$` matches before a final newline.
        for value in ("a\x00", "a\n"):
            response = await client.get("/admin/v1/audit-events", params={"action": value}, headers=admin_headers)
            _assert_problem(response, 400, "bad-request")


async def test_the_openapi_document_says_query_values_hold_no_control_character(fresh_app: Litestar) -> None:
    async with serve(fresh_app) as client:
        document = (await client.get("/schema/openapi.json")).json()
    for path, name in [*FILTERS, ("/v1/products", "cursor")]:
        operation = document["paths"][path]["get"]
        assert "400" in operation["responses"]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == name]
        branches = parameter["schema"].get("oneOf", [parameter["schema"]])
        (string,) = [b for b in branches if b.get("type") == "string"]
        assert string["pattern"] == NO_CONTROL_CHARACTERS_PATTERN
    pattern = re.compile(NO_CONTROL_CHARACTERS_PATTERN)
    assert pattern.search("green tea")
    assert pattern.search("")
    for value in CONTROLS.values():
        assert pattern.search(value) is None, repr(value)


# --- 5. HEAD -----------------------------------------------------------------------------------------

# Headers that differ between two answers to the same request.
_VOLATILE = {"request-id", "ratelimit", "date"}


def _same_answer(get: httpx.Response, head: httpx.Response) -> None:
    assert head.status_code == get.status_code, (get.status_code, head.status_code, get.text)
    assert head.content == b""
    get_headers = {k: v for k, v in get.headers.items() if k not in _VOLATILE}
    head_headers = {k: v for k, v in head.headers.items() if k not in _VOLATILE}
    assert head_headers == get_headers
    assert int(head.headers["content-length"]) == len(get.content)


async def test_head_answers_like_get_on_every_kind_of_route(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant, admin_headers: dict[str, str]
) -> None:
    async with serve(fresh_app) as client:
        own = await create_product_served(client, tenant_a)
        cases: list[tuple[str, dict[str, str], int]] = [
            ("/health/live", {}, 200),
            ("/schema/openapi.json", {}, 200),
            ("/v1/products", tenant_a.headers, 200),
            (f"/v1/products/{own}", tenant_a.headers, 200),
            # Another workspace's product: 404, exactly as GET answers it.
            (f"/v1/products/{own}", tenant_b.headers, 404),
            (f"/v1/products/{uuid.uuid4()}", tenant_a.headers, 404),
            ("/v1/whoami", tenant_b.headers, 200),
            ("/v1/products", {}, 401),
            ("/v1/products", admin_headers, 401),
            ("/admin/v1/workspaces", admin_headers, 200),
            ("/admin/v1/workspaces", tenant_a.headers, 401),
            ("/v1/nowhere", tenant_a.headers, 404),
        ]
        for path, headers, status in cases:
            get = await client.get(path, headers=headers)
            head = await client.head(path, headers=headers)
            assert get.status_code == status, (path, get.text)
            _same_answer(get, head)
        etagged = await client.head(f"/v1/products/{own}", headers=tenant_a.headers)
        assert etagged.headers["etag"]
        # A route without GET has no HEAD either; Allow lists HEAD wherever GET is.
        no_get = await client.head("/v1/auth/token")
        options = await client.options("/v1/products", headers=tenant_a.headers)
    assert no_get.status_code == 405
    assert no_get.content == b""
    assert "HEAD" not in no_get.headers["allow"]
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_head_writes_nothing_and_the_openapi_document_stays_get_only(fresh_app: Litestar) -> None:
    async with serve(fresh_app) as client:
        document = (await client.get("/schema/openapi.json")).json()
    # HEAD is implied by every GET (docs/05-api-guide.md); no operation is documented for it.
    assert not [path for path, item in document["paths"].items() if "head" in item]


async def create_product_served(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post(
        "/v1/products",
        json={"name": "Head", "price_cents": 5, "currency": "EUR", "sku": f"HEAD-{uuid.uuid4().hex[:8]}"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --- 6. encoded slashes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/products/%2F",
        "/v1/products/%2f",
        "/v1/products%2F",
        "/v1/products/%2F/",
        "/admin/v1/workspaces/%2F",
        "/health/live%2F",
        "/v1/auth%2Ftoken",
    ],
)
async def test_an_encoded_slash_in_the_path_is_a_404(
    fresh_app: Litestar, tenant_a: Tenant, admin_headers: dict[str, str], path: str
) -> None:
    headers = admin_headers if path.startswith("/admin/") else tenant_a.headers
    async with serve(fresh_app) as client:
        for with_headers in (headers, {}):
            response = await client.get(path, headers=with_headers)
            body = _assert_problem(response, 404, "not-found")
            assert body["detail"] == "The resource was not found."
            assert response.headers["request-id"]
        head = await client.head(path, headers=headers)
        unknown = await client.get("/v1/nowhere", headers=headers)
    assert head.status_code == 404
    assert head.content == b""
    # Byte for byte the router's own 404.
    assert response.content == unknown.content


async def test_an_encoded_slash_never_reaches_another_workspace_s_rows(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant, client: Any
) -> None:
    await create_product(client, tenant_b)
    async with serve(fresh_app) as served:
        response = await served.get("/v1/products/%2F", headers=tenant_a.headers)
    _assert_problem(response, 404, "not-found")
