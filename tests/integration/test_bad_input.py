"""Hostile and broken input: always a 4xx problem document, never a 5xx, never an internal detail.

Every case also checks that nothing was written: a refused request leaves the workspace's rows
exactly as they were.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import Tenant, create_product, snapshot_rows

Client = AsyncTestClient[Litestar]

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://tenantry.dev/problems/"
FORBIDDEN = ("SELECT", "INSERT", "sqlstate", "asyncpg", "Traceback", "/work", ".py", "pk_", "uq_", "ck_", "fk_")

# Body that parses but does not match the schema: 422 with the field named. Broken JSON and
# anything wrong in the URL: 400 (docs/05-api-guide.md, Errors).
SCHEMA = (422, "validation-error")

VALID = {"name": "Widget", "price_cents": 1999, "currency": "EUR", "sku": "BAD-INPUT-1"}


def _json(**changes: object) -> bytes:
    """VALID with some fields changed; a value of ... removes the field."""
    body = {**VALID, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def _raw(price: str) -> bytes:
    """A body whose price_cents is raw JSON text that no encoder would produce."""
    return b'{"name": "Widget", "currency": "EUR", "sku": "BAD-INPUT-1", "price_cents": ' + price.encode() + b"}"


@dataclass(frozen=True)
class Case:
    status: int
    slug: str
    body: bytes | None = None
    content_type: str = "application/json"
    method: str = "POST"
    path: str = "/v1/products"
    # A name the errors list must mention (as its field, or in its message), when the code gives one.
    field: str | None = None


CASES: dict[str, Case] = {
    "malformed json": Case(400, "malformed-json", b'{"name": "Widget",', field="body"),
    "truncated json": Case(400, "malformed-json", b'{"name": "Wid', field="body"),
    "not utf-8": Case(400, "malformed-json", b"\xff\xfe{}", field="body"),
    "lone surrogate": Case(400, "malformed-json", b'{"name": "\\ud800"}', field="body"),
    "json array": Case(*SCHEMA, b"[]"),
    "json array of objects": Case(*SCHEMA, json.dumps([VALID]).encode()),
    "json null": Case(*SCHEMA, b"null"),
    "json string": Case(*SCHEMA, b'"Widget"'),
    "empty body": Case(400, "malformed-json", b""),
    "price as string": Case(*SCHEMA, _json(price_cents="12"), field="price_cents"),
    "price as exponent string": Case(*SCHEMA, _json(price_cents="1e3"), field="price_cents"),
    "price as bool": Case(*SCHEMA, _json(price_cents=True), field="price_cents"),
    "name as number": Case(*SCHEMA, _json(name=5), field="name"),
    "name as null": Case(*SCHEMA, _json(name=None), field="name"),
    "name as object": Case(*SCHEMA, _json(name={"en": "Widget"}), field="name"),
    "nul in name": Case(*SCHEMA, _json(name="Wid\x00get"), field="name"),
    "nul in description": Case(*SCHEMA, _json(description="line\x00"), field="description"),
    "escape in name": Case(*SCHEMA, _json(name="\x1b[31mred"), field="name"),
    "bell in name": Case(*SCHEMA, _json(name="ding\x07"), field="name"),
    "form feed in description": Case(*SCHEMA, _json(description="page\x0cbreak"), field="description"),
    "carriage return in name": Case(*SCHEMA, _json(name="over\rwrite"), field="name"),
    "delete in name": Case(*SCHEMA, _json(name="rub\x7fout"), field="name"),
    "c1 csi in name": Case(*SCHEMA, _json(name="\x9b31mred"), field="name"),
    "c1 next line in name": Case(*SCHEMA, _json(name="two\x85lines"), field="name"),
    "empty name": Case(*SCHEMA, _json(name=""), field="name"),
    "name over 200": Case(*SCHEMA, _json(name="n" * 201), field="name"),
    "description over 5000": Case(*SCHEMA, _json(description="d" * 5001), field="description"),
    "sku with spaces": Case(*SCHEMA, _json(sku="SKU 1"), field="sku"),
    "sku empty": Case(*SCHEMA, _json(sku=""), field="sku"),
    "sku over 64": Case(*SCHEMA, _json(sku="S" * 65), field="sku"),
    "sku leading dash": Case(*SCHEMA, _json(sku="-SKU"), field="sku"),
    "currency lower case": Case(*SCHEMA, _json(currency="eur"), field="currency"),
    "currency four letters": Case(*SCHEMA, _json(currency="EURO"), field="currency"),
    "price negative": Case(*SCHEMA, _json(price_cents=-1), field="price_cents"),
    "price 10**13": Case(*SCHEMA, _json(price_cents=10**13), field="price_cents"),
    "price beyond bigint": Case(*SCHEMA, _json(price_cents=2**63), field="price_cents"),
    "price fractional": Case(*SCHEMA, _json(price_cents=1.5), field="price_cents"),
    "price 1e400": Case(*SCHEMA, _raw("1e400"), field="price_cents"),
    "price NaN": Case(400, "malformed-json", _raw("NaN")),
    "price Infinity": Case(400, "malformed-json", _raw("Infinity")),
    "price -Infinity": Case(400, "malformed-json", _raw("-Infinity")),
    "unknown field": Case(*SCHEMA, _json(colour="red"), field="colour"),
    "missing required field": Case(*SCHEMA, _json(price_cents=...), field="price_cents"),
    "body over max_body_bytes": Case(413, "payload-too-large", _json(description="d" * (1024 * 1024))),
    "text/plain body": Case(415, "unsupported-media-type", _json(), content_type="text/plain"),
    "form body": Case(415, "unsupported-media-type", b"name=Widget", content_type="application/x-www-form-urlencoded"),
    "non-uuid product id": Case(400, "bad-request", method="GET", path="/v1/products/not-a-uuid", field="product_id"),
    "non-uuid product id on patch": Case(
        400, "bad-request", _json(), method="PATCH", path="/v1/products/12345", field="product_id"
    ),
    "unknown query parameter": Case(
        400, "unknown-query-parameter", method="GET", path="/v1/products?categroy_id=1", field="categroy_id"
    ),
    "unknown route": Case(404, "not-found", method="GET", path="/v1/nothing-here"),
    "unknown route outside v1": Case(404, "not-found", method="GET", path="/admin"),
    "put on the collection": Case(405, "method-not-allowed", _json(), method="PUT"),
    "limit not a number": Case(400, "bad-request", method="GET", path="/v1/products?limit=abc", field="limit"),
    "limit fractional": Case(400, "bad-request", method="GET", path="/v1/products?limit=1.5", field="limit"),
    "include_deleted not a bool": Case(
        400, "bad-request", method="GET", path="/v1/products?include_deleted=maybe", field="include_deleted"
    ),
    "cursor over 512": Case(400, "bad-request", method="GET", path="/v1/products?cursor=" + "a" * 600, field="cursor"),
}


def _assert_clean_problem(response, status: int, slug: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["title"]
    assert body["detail"]
    for needle in FORBIDDEN:
        assert needle.lower() not in response.text.lower(), needle
    return dict(body)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_bad_input_answers_a_clean_4xx_problem(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, case: Case
) -> None:
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)
    headers = dict(tenant_a.headers)
    if case.body is not None:
        headers["Content-Type"] = case.content_type

    response = await client.request(case.method, case.path, content=case.body, headers=headers)

    body = _assert_clean_problem(response, case.status, case.slug)
    if case.field is not None:
        errors = body.get("errors")
        assert isinstance(errors, list), body
        assert errors
        assert any(case.field in e["field"] or case.field in e["message"] for e in errors), errors
    if case.status == 405:
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET", "POST"} <= allowed
        assert "PUT" not in allowed
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


PATCH_CASES: dict[str, tuple[bytes, int, str, str | None]] = {
    "malformed json": (b'{"name": ', 400, "malformed-json", "body"),
    "json array": (b"[]", *SCHEMA, None),
    "price as string": (b'{"price_cents": "12"}', *SCHEMA, "price_cents"),
    "name as null": (b'{"name": null}', *SCHEMA, "name"),
    "nul in description": (b'{"description": "a\\u0000b"}', *SCHEMA, "description"),
    "currency lower case": (b'{"currency": "usd"}', *SCHEMA, "currency"),
    "price negative": (b'{"price_cents": -5}', *SCHEMA, "price_cents"),
    "unknown field": (b'{"stock": 3}', *SCHEMA, "stock"),
    "tenant_id in body": (b'{"tenant_id": "00000000-0000-0000-0000-000000000000"}', *SCHEMA, "tenant_id"),
}


@pytest.mark.parametrize(("raw", "status", "slug", "field"), list(PATCH_CASES.values()), ids=list(PATCH_CASES))
async def test_bad_patch_answers_4xx_and_leaves_the_product_unchanged(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    raw: bytes,
    status: int,
    slug: str,
    field: str | None,
) -> None:
    product = await create_product(client, tenant_a)
    before = await snapshot_rows(admin_engine, "products", tenant_a.id)

    response = await client.patch(
        f"/v1/products/{product['id']}", content=raw, headers={**tenant_a.headers, "Content-Type": "application/json"}
    )

    body = _assert_clean_problem(response, status, slug)
    if field is not None:
        errors = body.get("errors")
        assert isinstance(errors, list), body
        assert any(field in e["field"] or field in e["message"] for e in errors), errors
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == before


async def test_longest_allowed_values_are_accepted(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    """The wire limits and the column sizes agree, for multi-byte text too (no 500 at the boundary)."""
    product = await create_product(
        client,
        tenant_a,
        name="é" * 199 + "🙂",
        description="ü" * 4999 + "\n",
        sku="S" * 64,
        price_cents=10**12,
    )
    assert len(str(product["name"])) == 200
    assert product["price_cents"] == 10**12
    rows = await snapshot_rows(admin_engine, "products", tenant_a.id)
    assert len(rows) == 1


async def test_tab_and_newline_are_allowed_in_description(client: Client, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a, description="line one\n\tindented")
    assert product["description"] == "line one\n\tindented"


async def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A load generator stopping with POSTs in flight used to log an 'unhandled error' 500 each."""
    sent: list[dict[str, object]] = []
    messages = [
        {"type": "http.request", "body": b'{"name": "Half', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/products",
        "raw_path": b"/v1/products",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {tenant_a.token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"200"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    with caplog.at_level(logging.INFO):
        # On the client's own loop, where the app's engine lives (as the client's requests run).
        client.blocking_portal.call(client.app, scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await snapshot_rows(admin_engine, "products", tenant_a.id) == []
