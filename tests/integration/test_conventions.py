"""API conventions: Location on every 201, Request-Id on every answer, snake_case everywhere."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tests.support import Tenant, create_product, set_password

Client = AsyncTestClient[Litestar]
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
PASSWORD = "correct horse battery staple"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- Location on 201 ------------------------------------------------------------------------------


@dataclass
class Caller:
    client: Client
    tenant: Tenant
    admin_headers: dict[str, str]


async def _accept_invitation(caller: Caller, role: str = "admin") -> tuple[httpx.Response, str]:
    email = f"{unique('inv')}@example.com"
    invited = await caller.client.post(
        "/v1/invitations", json={"email": email, "role": role}, headers=caller.tenant.headers
    )
    assert invited.status_code == 201, invited.text
    accepted = await caller.client.post("/v1/invitations/accept", json={"token": invited.json()["token"]})
    return accepted, email


async def create_product_call(caller: Caller) -> httpx.Response:
    body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": unique("SKU")}
    return await caller.client.post("/v1/products", json=body, headers=caller.tenant.headers)


async def create_lookup_call(caller: Caller) -> httpx.Response:
    body = {"kind": "product_category", "code": unique("cat"), "name": "Category"}
    return await caller.client.post("/v1/lookups", json=body, headers=caller.tenant.headers)


async def create_order_call(caller: Caller) -> httpx.Response:
    product = await create_product(caller.client, caller.tenant)
    body = {"product_id": product["id"], "customer_email": "ada@example.com", "customer_name": "Ada", "quantity": 2}
    return await caller.client.post("/v1/orders", json=body, headers=caller.tenant.headers)


async def create_invitation_call(caller: Caller) -> httpx.Response:
    body = {"email": f"{unique('inv')}@example.com", "role": "member"}
    return await caller.client.post("/v1/invitations", json=body, headers=caller.tenant.headers)


async def accept_invitation_call(caller: Caller) -> httpx.Response:
    accepted, _ = await _accept_invitation(caller)
    return accepted


async def create_token_call(caller: Caller) -> httpx.Response:
    return await caller.client.post("/v1/tokens", json={"name": "ci"}, headers=caller.tenant.headers)


async def rotate_token_call(caller: Caller) -> httpx.Response:
    token = (await create_token_call(caller)).json()
    return await caller.client.post(f"/v1/tokens/{token['id']}/rotate", headers=caller.tenant.headers)


async def password_login_call(caller: Caller) -> httpx.Response:
    accepted, email = await _accept_invitation(caller)
    assert accepted.status_code == 201, accepted.text
    await set_password(caller.client.app.state.settings, email, PASSWORD)  # only an admin sets passwords
    body = {"email": email, "password": PASSWORD, "workspace": caller.tenant.workspace.slug}
    return await caller.client.post("/v1/auth/token", json=body)


async def create_workspace_call(caller: Caller) -> httpx.Response:
    slug = unique("ws")
    body = {"slug": slug, "name": "Workspace", "owner_email": f"owner-{slug}@example.com"}
    return await caller.client.post("/admin/v1/workspaces", json=body, headers=caller.admin_headers)


# Every operation that answers 201, and a real call of it. A new 201 route must be added here.
CREATES: dict[str, Callable[[Caller], Awaitable[httpx.Response]]] = {
    "createProduct": create_product_call,
    "createLookup": create_lookup_call,
    "createOrder": create_order_call,
    "createInvitation": create_invitation_call,
    "acceptInvitation": accept_invitation_call,
    "createToken": create_token_call,
    "rotateToken": rotate_token_call,
    "createTokenWithPassword": password_login_call,
    "createWorkspace": create_workspace_call,
}


def operations_answering_201(app: Litestar) -> set[str]:
    return {
        str(handler.operation_id)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.status_code == 201
    }


def test_every_route_answering_201_has_a_location_check(app: Litestar) -> None:
    answering_201 = operations_answering_201(app)
    assert {"createProduct", "createInvitation", "createToken"} <= answering_201
    assert answering_201 == set(CREATES), "add a real call to CREATES for every new route answering 201"


@pytest.mark.parametrize("operation_id", list(CREATES))
async def test_a_201_carries_the_location_of_what_it_created(
    client: Client, tenant_a: Tenant, admin_headers: dict[str, str], operation_id: str
) -> None:
    caller = Caller(client, tenant_a, admin_headers)
    response = await CREATES[operation_id](caller)
    assert response.status_code == 201, response.text
    location = response.headers.get("location")
    assert location, f"{operation_id} answered 201 without Location"
    assert location.startswith("/")
    headers = admin_headers if location.startswith("/admin/") else tenant_a.headers
    fetched = await client.get(location, headers=headers)
    assert fetched.status_code == 200, (location, fetched.text)
    created = response.json()
    fetched_body = fetched.json()
    # The Location names what was created: same id (an accepted invitation creates a member).
    created_id = (
        created.get("id")
        or created.get("token_id")
        or created.get("member", {}).get("id")
        or created.get("workspace", {}).get("id")
    )
    assert fetched_body["id"] == created_id


# --- Request-Id -----------------------------------------------------------------------------------


def _big_body() -> str:
    return '{"name": "' + "x" * 2_000_000 + '"}'


# (name, method, path, needs a token, extra request arguments, expected status)
ANSWERS: list[tuple[str, str, str, bool, dict[str, Any], int]] = [
    ("live", "GET", "/health/live", False, {}, 200),
    ("list", "GET", "/v1/products", True, {}, 200),
    ("invalid-body", "POST", "/v1/products", True, {"json": {"name": "W", "price_cents": 1, "currency": "EUR"}}, 422),
    ("no-token", "GET", "/v1/products", False, {}, 401),
    ("unknown-path", "GET", "/v1/no-such-thing", True, {}, 404),
    ("unknown-path-no-token", "GET", "/nowhere", False, {}, 404),
    ("wrong-method", "PUT", "/v1/products", True, {}, 405),
    ("unknown-query", "GET", "/v1/products", True, {"params": {"colour": "red"}}, 400),
    ("bad-id", "GET", "/v1/products/not-a-uuid", True, {}, 400),
    ("missing", "GET", f"/v1/products/{uuid.uuid4()}", True, {}, 404),
    ("wrong-type", "POST", "/v1/products", True, {"content": "a=1", "headers": {"content-type": "text/plain"}}, 415),
    (
        "too-large",
        "POST",
        "/v1/products",
        True,
        {"content": _big_body(), "headers": {"content-type": "application/json"}},
        413,
    ),
    ("schema", "GET", "/schema/openapi.json", False, {}, 200),
    ("bad-key", "POST", "/v1/products", True, {"json": {}, "headers": {"idempotency-key": ""}}, 400),
]


async def _call(
    client: Client, tenant: Tenant, case: tuple[str, str, str, bool, dict[str, Any], int], **extra_headers: str
) -> httpx.Response:
    _, method, path, needs_token, arguments, _ = case
    arguments = dict(arguments)
    headers = {**(tenant.headers if needs_token else {}), **arguments.pop("headers", {}), **extra_headers}
    return await client.request(method, path, headers=headers, **arguments)


@pytest.mark.parametrize("case", ANSWERS, ids=[case[0] for case in ANSWERS])
async def test_every_answer_carries_a_request_id(
    client: Client, tenant_a: Tenant, case: tuple[str, str, str, bool, dict[str, Any], int]
) -> None:
    first = await _call(client, tenant_a, case)
    second = await _call(client, tenant_a, case)
    assert first.status_code == case[5], first.text
    for response in (first, second):
        assert GENERATED_REQUEST_ID.match(response.headers["request-id"]), response.headers
    assert first.headers["request-id"] != second.headers["request-id"]


@pytest.mark.parametrize("case", ANSWERS, ids=[case[0] for case in ANSWERS])
async def test_a_valid_client_request_id_is_kept(
    client: Client, tenant_a: Tenant, case: tuple[str, str, str, bool, dict[str, Any], int]
) -> None:
    chosen = f"client:{uuid.uuid4().hex[:12]}.retry-1"
    response = await _call(client, tenant_a, case, **{"x-request-id": chosen})
    assert response.status_code == case[5]
    assert response.headers["request-id"] == chosen


@pytest.mark.parametrize(
    "chosen",
    ["short", "x" * 129, "has space in it", "new\\nline-injected", "semi;colon;value", "\u00e9t\u00e9-request-id"],
    ids=["too-short", "too-long", "space", "backslash", "semicolon", "non-ascii"],
)
async def test_an_invalid_client_request_id_is_replaced(client: Client, tenant_a: Tenant, chosen: str) -> None:
    for path, headers in (("/v1/products", tenant_a.headers), ("/v1/products", {}), ("/nowhere", {})):
        response = await client.get(path, headers=[*headers.items(), ("x-request-id", chosen.encode())])
        assert GENERATED_REQUEST_ID.match(response.headers["request-id"]), (chosen, response.headers)


async def test_a_replayed_answer_gets_its_own_request_id(client: Client, tenant_a: Tenant) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": unique("key")}
    body = {"name": "W", "price_cents": 1, "currency": "EUR", "sku": unique("SKU")}
    first = await client.post("/v1/products", json=body, headers=headers)
    replay = await client.post("/v1/products", json=body, headers={**headers, "X-Request-Id": "replay-request-0001"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["request-id"] == "replay-request-0001"
    assert first.headers["request-id"] != replay.headers["request-id"]


# --- one naming convention ------------------------------------------------------------------------


def _property_names(node: Any, where: str = "#") -> list[tuple[str, str]]:
    """Every (location, property name) declared by any schema anywhere in the document."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found += [(where, name) for name in node["properties"]]
        for key, value in node.items():
            found += _property_names(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _property_names(value, f"{where}/{index}")
    return found


async def test_every_property_in_every_schema_is_snake_case(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    names = _property_names(document)
    assert len(names) > 100  # the walk reached the schemas
    assert {"price_cents", "next_cursor", "has_more", "request_id"} <= {name for _, name in names}
    offenders = [(where, name) for where, name in names if not SNAKE_CASE.match(name)]
    assert offenders == []


async def test_every_query_and_path_parameter_is_snake_case(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    parameters = [
        (path, parameter["name"])
        for path, item in document["paths"].items()
        for operation in item.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("query", "path")
    ]
    assert parameters
    assert [p for p in parameters if not SNAKE_CASE.match(p[1])] == []


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(key for item in value.values() for key in _keys(item))]
    if isinstance(value, list):
        return [key for item in value for key in _keys(item)]
    return []


async def test_real_answers_use_snake_case_keys(client: Client, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a)
    answers = [
        product,
        (await client.get("/v1/products", headers=tenant_a.headers)).json(),
        (await client.get("/v1/members/me", headers=tenant_a.headers)).json(),
        (await client.post("/v1/products", json={"price_cents": "1"}, headers=tenant_a.headers)).json(),
        (await client.get("/v1/products", params={"nope": "1"}, headers=tenant_a.headers)).json(),
    ]
    keys = [key for answer in answers for key in _keys(answer)]
    assert {"price_cents", "has_more", "next_cursor", "errors", "field"} <= set(keys)
    assert [key for key in keys if not SNAKE_CASE.match(key)] == []
