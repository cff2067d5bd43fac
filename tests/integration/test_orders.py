"""/v1/orders: amounts fixed at order time, the status machine and its history, tags, filters and
keyset pagination that stays stable under concurrent inserts, ETag/If-Match, strict parameters,
and the cross-workspace contract on every route."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.permissions import effective_level, role_permissions
from tenantry.core.sqlstate import sqlstate_of
from tenantry.orders.repository import OrderRepository
from tenantry.orders.status import TRANSITIONS
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import (
    Caller,
    Client,
    Tenant,
    all_pages,
    answer,
    as_tenant,
    assert_problem,
    create_lookup,
    create_order,
    create_product,
    plan_as_tenant,
    rows_of,
    snapshot_business,
    target_audit,
)

T = TypeVar("T")
STATUSES = ("created", "processing", "paid", "refunded", "cancelled")
# The shortest legal path from "created" to each status.
PATH_TO = {
    "created": [],
    "processing": ["processing"],
    "paid": ["processing", "paid"],
    "refunded": ["processing", "paid", "refunded"],
    "cancelled": ["cancelled"],
}
LEGAL = {
    ("created", "processing"),
    ("processing", "paid"),
    ("paid", "refunded"),
    ("created", "cancelled"),
    ("processing", "cancelled"),
}


async def in_thread(call: Callable[[], Awaitable[T]]) -> T:
    """Run one API call on a thread of its own (with its own event loop).

    The test client hands each request to the app's loop and blocks the caller's thread until it
    is answered, so requests awaited together on one loop would still run one after another.
    """
    return await asyncio.to_thread(lambda: asyncio.run(call()))  # type: ignore[arg-type]


async def _transition(client: Client, tenant: Tenant, order_id: object, to: str, **headers: str) -> Any:
    return await client.post(
        f"/v1/orders/{order_id}/transitions", json={"to": to}, headers={**tenant.headers, **headers}
    )


async def _history(client: Client, tenant: Tenant, order_id: object) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/orders/{order_id}/history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["has_more"] is False
    return list(page["data"])


# --- create ---------------------------------------------------------------------------------------


async def test_create_fixes_amount_and_currency_from_the_product_and_starts_the_history(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    tag = await create_lookup(client, tenant_a, kind="order_tag", code="rush", name="Rush", color="#ff0000")
    product = await create_product(client, tenant_a, price_cents=1250, currency="USD")
    body = {
        "product_id": product["id"],
        "customer_email": "Ada@Example.com",
        "customer_name": "Ada Lovelace",
        "quantity": 3,
        "tag_ids": [tag["id"]],
    }
    response = await client.post("/v1/orders", json=body, headers=tenant_a.headers)

    assert response.status_code == 201, response.text
    order = response.json()
    assert uuid.UUID(order["id"]).version == 7
    assert response.headers["location"] == f"/v1/orders/{order['id']}"
    assert {k: order[k] for k in ("product_id", "customer_email", "customer_name", "quantity")} == {
        k: body[k] for k in ("product_id", "customer_email", "customer_name", "quantity")
    }
    assert (order["amount_cents"], order["currency"], order["status"]) == (3750, "USD", "created")
    assert order["tags"] == [{"id": tag["id"], "code": "rush", "name": "Rush", "color": "#FF0000"}]
    fetched = await client.get(response.headers["location"], headers=tenant_a.headers)
    assert fetched.json() == order
    assert fetched.headers["etag"] == response.headers["etag"]

    (entry,) = await _history(client, tenant_a, order["id"])
    assert (entry["from_status"], entry["to_status"]) == (None, "created")
    assert entry["changed_by_member_id"] == str(tenant_a.workspace.owner_membership_id)
    assert await target_audit(admin_engine, tenant_a.id, order["id"]) == ["order.created"]


async def test_a_later_price_change_does_not_alter_an_existing_order(client: Client, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a, price_cents=1000, currency="EUR")
    before = await create_order(client, tenant_a, product["id"], quantity=2)
    changed = await client.patch(
        f"/v1/products/{product['id']}", json={"price_cents": 4000, "currency": "GBP"}, headers=tenant_a.headers
    )
    assert changed.status_code == 200
    after = await create_order(client, tenant_a, product["id"], quantity=2)

    assert (before["amount_cents"], before["currency"]) == (2000, "EUR")
    assert (after["amount_cents"], after["currency"]) == (8000, "GBP")
    assert (await client.get(f"/v1/orders/{before['id']}", headers=tenant_a.headers)).json() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": 10001}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"customer_name": ""}, "customer_name"),
        ({"customer_name": "a\x00b"}, "customer_name"),
        ({"amount_cents": 1}, "amount_cents"),
        ({"status": "paid"}, "status"),
        ({"tenant_id": str(uuid.UUID(int=1))}, "tenant_id"),
        ({"tag_ids": ["nope"]}, "tag_ids"),
        ({"product_id": "nope"}, "product_id"),
    ],
)
async def test_invalid_create_is_422_naming_the_field_and_stores_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, change: dict[str, object], field: str
) -> None:
    product = await create_product(client, tenant_a)
    before = await snapshot_business(admin_engine, tenant_a.id)
    body = {"product_id": product["id"], "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    response = await client.post("/v1/orders", json={**body, **change}, headers=tenant_a.headers)
    problem = assert_problem(response, 422, "validation-error")
    assert field in str(problem.get("errors")), problem
    assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_a_deleted_unknown_or_foreign_product_is_one_and_the_same_422(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    deleted = await create_product(client, tenant_a)
    assert (await client.delete(f"/v1/products/{deleted['id']}", headers=tenant_a.headers)).status_code == 204
    foreign = await create_product(client, tenant_b)
    before_a = await snapshot_business(admin_engine, tenant_a.id)
    before_b = await snapshot_business(admin_engine, tenant_b.id)

    def body(product_id: object) -> dict[str, object]:
        return {"product_id": str(product_id), "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}

    answers = [
        await answer(client, tenant_a, "POST", "/v1/orders", json=body(product_id))
        for product_id in (deleted["id"], foreign["id"], uuid.uuid4())
    ]
    assert answers[0][0] == 422
    assert answers[0] == answers[1] == answers[2]
    assert b'"field":"product_id","message":"unknown product"' in answers[0][1]
    assert await snapshot_business(admin_engine, tenant_a.id) == before_a
    assert await snapshot_business(admin_engine, tenant_b.id) == before_b


# --- tags -----------------------------------------------------------------------------------------


async def test_tags_must_be_order_tags(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    category = await create_lookup(client, tenant_a, kind="product_category")
    tag = await create_lookup(client, tenant_a, kind="order_tag")
    product = await create_product(client, tenant_a)
    order = await create_order(client, tenant_a, product["id"])
    before = await snapshot_business(admin_engine, tenant_a.id)
    body = {"product_id": product["id"], "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    for response in (
        await client.post(
            "/v1/orders", json={**body, "tag_ids": [tag["id"], category["id"]]}, headers=tenant_a.headers
        ),
        await client.patch(
            f"/v1/orders/{order['id']}", json={"tag_ids": [tag["id"], category["id"]]}, headers=tenant_a.headers
        ),
    ):
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"] == [{"field": "tag_ids[1]", "message": "is not an order tag"}]
    assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_patch_replaces_the_tag_set_and_ignores_repeats(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    first, second, third = [
        await create_lookup(client, tenant_a, kind="order_tag", code=code, position=position)
        for code, position in (("a", 2), ("b", 1), ("c", 0))
    ]
    order = await create_order(client, tenant_a, tag_ids=[first["id"], first["id"]])
    assert [t["id"] for t in order["tags"]] == [first["id"]]
    response = await client.patch(
        f"/v1/orders/{order['id']}",
        json={"tag_ids": [first["id"], second["id"], third["id"], second["id"]]},
        headers=tenant_a.headers,
    )
    assert response.status_code == 200, response.text
    # Ordered by the tags' position.
    assert [t["code"] for t in response.json()["tags"]] == ["c", "b", "a"]
    cleared = await client.patch(f"/v1/orders/{order['id']}", json={"tag_ids": []}, headers=tenant_a.headers)
    assert cleared.json()["tags"] == []
    assert await rows_of(admin_engine, "order_tags", tenant_a.id) == []
    assert await target_audit(admin_engine, tenant_a.id, order["id"]) == [
        "order.created",
        "order.updated",
        "order.updated",
    ]


async def test_patch_changes_the_customer_name_only_and_a_no_op_records_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    order = await create_order(client, tenant_a)
    url = f"/v1/orders/{order['id']}"
    renamed = await client.patch(url, json={"customer_name": "Grace Hopper"}, headers=tenant_a.headers)
    assert renamed.status_code == 200
    body = renamed.json()
    assert body["customer_name"] == "Grace Hopper"
    assert {k: v for k, v in body.items() if k not in ("customer_name", "updated_at")} == {
        k: v for k, v in order.items() if k not in ("customer_name", "updated_at")
    }
    unchanged = await client.patch(url, json={"customer_name": "Grace Hopper"}, headers=tenant_a.headers)
    assert unchanged.json() == body
    assert await target_audit(admin_engine, tenant_a.id, order["id"]) == ["order.created", "order.updated"]
    for refused in ({"quantity": 5}, {"status": "paid"}, {"amount_cents": 0}, {"product_id": order["product_id"]}):
        assert_problem(await client.patch(url, json=refused, headers=tenant_a.headers), 422, "validation-error")


# --- the status machine ---------------------------------------------------------------------------


def test_the_machine_is_exactly_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == LEGAL
    assert set(TRANSITIONS) == set(STATUSES)


@pytest.mark.parametrize(("from_status", "to_status"), list(itertools.product(STATUSES, STATUSES)))
async def test_every_transition_is_allowed_or_refused_as_the_machine_says(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_status: str, to_status: str
) -> None:
    order = await create_order(client, tenant_a)
    for step in PATH_TO[from_status]:
        assert (await _transition(client, tenant_a, order["id"], step)).status_code == 200
    history_before = await _history(client, tenant_a, order["id"])
    before = await snapshot_business(admin_engine, tenant_a.id)

    response = await _transition(client, tenant_a, order["id"], to_status)

    if (from_status, to_status) in LEGAL:
        assert response.status_code == 200, response.text
        moved = response.json()
        assert moved["status"] == to_status
        assert (
            response.headers["etag"]
            == (await client.get(f"/v1/orders/{order['id']}", headers=tenant_a.headers)).headers["etag"]
        )
        history = await _history(client, tenant_a, order["id"])
        assert history[:-1] == history_before
        assert (history[-1]["from_status"], history[-1]["to_status"]) == (from_status, to_status)
        assert history[-1]["changed_by_member_id"] == str(tenant_a.workspace.owner_membership_id)
        assert (await target_audit(admin_engine, tenant_a.id, order["id"]))[-1] == "order.status_changed"
    else:
        problem = assert_problem(response, 409, "illegal-transition")
        assert f"from '{from_status}' to '{to_status}'" in problem["detail"]
        assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_the_history_keeps_every_step_oldest_first(client: Client, tenant_a: Tenant) -> None:
    order = await create_order(client, tenant_a)
    for step in ("processing", "paid", "refunded"):
        assert (await _transition(client, tenant_a, order["id"], step)).status_code == 200
    assert (await _transition(client, tenant_a, order["id"], "cancelled")).status_code == 409
    history = await _history(client, tenant_a, order["id"])
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "created"),
        ("created", "processing"),
        ("processing", "paid"),
        ("paid", "refunded"),
    ]
    assert [h["changed_at"] for h in history] == sorted(h["changed_at"] for h in history)


async def test_an_unknown_status_is_422(client: Client, admin_engine: AsyncEngine, tenant_a: Tenant) -> None:
    order = await create_order(client, tenant_a)
    before = await snapshot_business(admin_engine, tenant_a.id)
    for body in ({"to": "shipped"}, {"to": None}, {}, {"to": "paid", "from": "created"}):
        response = await client.post(f"/v1/orders/{order['id']}/transitions", json=body, headers=tenant_a.headers)
        assert_problem(response, 422, "validation-error")
    assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_concurrent_transitions_let_exactly_one_through(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    """Six truly parallel requests to cancel one order: the row lock lets one in, the rest see 'cancelled'."""
    order = await create_order(client, tenant_a)
    responses = await asyncio.gather(
        *(in_thread(lambda: _transition(client, tenant_a, order["id"], "cancelled")) for _ in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 5, [r.text for r in responses]
    history = await _history(client, tenant_a, order["id"])
    assert [(h["from_status"], h["to_status"]) for h in history] == [(None, "created"), ("created", "cancelled")]


# --- ETag / If-Match ------------------------------------------------------------------------------


async def test_patch_and_transition_with_a_stale_if_match_are_412_and_change_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    tag = await create_lookup(client, tenant_a, kind="order_tag")
    order = await create_order(client, tenant_a)
    url = f"/v1/orders/{order['id']}"
    stale = (await client.get(url, headers=tenant_a.headers)).headers["etag"]
    renamed = await client.patch(url, json={"customer_name": "New"}, headers={**tenant_a.headers, "If-Match": stale})
    assert renamed.status_code == 200
    current = renamed.headers["etag"]
    before = await snapshot_business(admin_engine, tenant_a.id)

    for response in (
        await client.patch(url, json={"customer_name": "Lost"}, headers={**tenant_a.headers, "If-Match": stale}),
        await client.patch(url, json={"tag_ids": [tag["id"]]}, headers={**tenant_a.headers, "If-Match": stale}),
        await _transition(client, tenant_a, order["id"], "processing", **{"If-Match": stale}),
    ):
        assert_problem(response, 412, "precondition-failed")
    assert await snapshot_business(admin_engine, tenant_a.id) == before

    moved = await _transition(client, tenant_a, order["id"], "processing", **{"If-Match": current})
    assert moved.status_code == 200
    # Tags are part of what the client sees: changing them changes the ETag.
    tagged = await client.patch(url, json={"tag_ids": [tag["id"]]}, headers={**tenant_a.headers, "If-Match": current})
    assert_problem(tagged, 412, "precondition-failed")
    tagged = await client.patch(
        url, json={"tag_ids": [tag["id"]]}, headers={**tenant_a.headers, "If-Match": moved.headers["etag"]}
    )
    assert tagged.status_code == 200
    assert tagged.headers["etag"] != moved.headers["etag"]


# --- list, filters, pagination --------------------------------------------------------------------


async def _page_through(client: Client, tenant: Tenant, limit: int, **params: object) -> list[dict[str, Any]]:
    return [item for page in await all_pages(client, "/v1/orders", tenant, limit, **params) for item in page["data"]]


async def test_list_filters_by_status_product_and_customer_email(client: Client, tenant_a: Tenant) -> None:
    first = await create_product(client, tenant_a)
    second = await create_product(client, tenant_a)
    ada = await create_order(client, tenant_a, first["id"], customer_email="ada@example.com")
    grace = await create_order(client, tenant_a, second["id"], customer_email="Grace@Example.com")
    paid = await create_order(client, tenant_a, second["id"], customer_email="grace@example.com")
    for step in ("processing", "paid"):
        await _transition(client, tenant_a, paid["id"], step)

    async def ids(**params: object) -> list[str]:
        return [o["id"] for o in await _page_through(client, tenant_a, 1, **params)]

    assert await ids() == [ada["id"], grace["id"], paid["id"]]
    assert await ids(status="created") == [ada["id"], grace["id"]]
    assert await ids(status="paid") == [paid["id"]]
    assert await ids(product_id=second["id"]) == [grace["id"], paid["id"]]
    assert await ids(customer_email="GRACE@example.COM") == [grace["id"], paid["id"]]
    assert await ids(customer_email="grace@example.com", status="created", product_id=second["id"]) == [grace["id"]]
    assert await ids(product_id=str(uuid.uuid4())) == []


async def test_list_sorts_by_amount_and_creation_both_ways(client: Client, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a, price_cents=100)
    orders = [await create_order(client, tenant_a, product["id"], quantity=q) for q in (3, 1, 3, 2, 5)]
    by_amount = await _page_through(client, tenant_a, 2, sort="amount_cents")
    assert [o["id"] for o in by_amount] == [o["id"] for o in sorted(orders, key=lambda o: (o["amount_cents"], o["id"]))]
    by_amount_desc = await _page_through(client, tenant_a, 2, sort="-amount_cents")
    assert [o["id"] for o in by_amount_desc] == [o["id"] for o in by_amount][::-1]
    newest_first = await _page_through(client, tenant_a, 2, sort="-created_at")
    assert [o["id"] for o in newest_first] == [o["id"] for o in orders][::-1]


async def test_the_customer_email_filter_uses_its_index_under_rls(
    client: Client, admin_engine: AsyncEngine, app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """The repository's own query, planned as the tenant role: lower() applies to the value, and
    the stored lower-cased email is what the (tenant_id, customer_email_lower) index serves."""
    product = await create_product(client, tenant_a)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO public.orders (tenant_id, id, product_id, customer_email, customer_name, quantity, "
                "amount_cents, currency) SELECT :t, gen_random_uuid(), :p, 'buyer' || n || '@example.com', 'B', 1, "
                "1, 'EUR' FROM generate_series(1, 5000) AS n"
            ),
            {"t": tenant_a.id, "p": product["id"]},
        )
        await connection.execute(text("ANALYZE public.orders"))
    query = OrderRepository(None, tenant_a.id).filtered(  # type: ignore[arg-type]
        status=None, product_id=None, customer_email="Buyer42@Example.com"
    )
    plan = await plan_as_tenant(app_engine, settings, tenant_a.id, query)
    assert "ix_orders_tenant_id_customer_email_lower" in plan, plan
    assert "Seq Scan" not in plan, plan
    found = await _page_through(client, tenant_a, 10, customer_email="BUYER42@example.com")
    assert [o["customer_email"] for o in found] == ["buyer42@example.com"]


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "amount_cents", "-amount_cents"])
async def test_paging_stays_stable_while_orders_are_being_inserted(client: Client, tenant_a: Tenant, sort: str) -> None:
    """No duplicates, and no order that existed before the first page is ever skipped."""
    product = await create_product(client, tenant_a, price_cents=10)
    existing = [await create_order(client, tenant_a, product["id"], quantity=1 + (i * 7) % 13) for i in range(17)]
    stop = asyncio.Event()

    async def keep_inserting() -> int:
        made = 0
        while not stop.is_set() and made < 40:
            await in_thread(lambda n=made: create_order(client, tenant_a, product["id"], quantity=1 + n % 13))
            made += 1
        return made

    async def page_through() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(200):
            # An insert lands between every two pages, besides the concurrent ones.
            await create_order(client, tenant_a, product["id"], quantity=7)
            params = {"limit": 5, "sort": sort, **({"cursor": cursor} if cursor else {})}
            response = await in_thread(lambda p=params: client.get("/v1/orders", params=p, headers=tenant_a.headers))
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["data"])
            if not page["has_more"]:
                return items
            cursor = page["next_cursor"]
        raise AssertionError("pagination never ended")

    inserter = asyncio.create_task(keep_inserting())
    try:
        seen = await page_through()
    finally:
        stop.set()
        inserted = await inserter
    assert inserted > 0
    ids = [o["id"] for o in seen]
    assert len(ids) == len(set(ids)), "a row appeared on two pages"
    assert {o["id"] for o in existing} <= set(ids), "a pre-existing row was skipped"
    field = sort.lstrip("-")
    keys = [(o[field], o["id"]) for o in seen]
    assert keys == sorted(keys, reverse=sort.startswith("-"))


async def test_cursor_is_bound_to_every_filter_and_the_sort(client: Client, tenant_a: Tenant) -> None:
    product = await create_product(client, tenant_a)
    for _ in range(3):
        await create_order(client, tenant_a, product["id"])
    first = (await client.get("/v1/orders?limit=1&status=created", headers=tenant_a.headers)).json()
    cursor = first["next_cursor"]
    for query in (
        "",
        "status=paid&",
        f"status=created&product_id={product['id']}&",
        "status=created&customer_email=ada@example.com&",
        "status=created&sort=-created_at&",
    ):
        response = await client.get(f"/v1/orders?{query}cursor={cursor}", headers=tenant_a.headers)
        assert_problem(response, 400, "invalid-cursor")
    assert (await client.get(f"/v1/orders?status=created&cursor={cursor}", headers=tenant_a.headers)).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "statuss=paid",
        "status=shipped",
        "sort=customer_name",
        "sort=amount",
        "product_id=not-a-uuid",
        "limit=0",
        "limit=101",
        "tenant_id=x",
        "cursor=garbage",
    ],
)
async def test_list_refuses_unknown_or_invalid_query_parameters(client: Client, tenant_a: Tenant, query: str) -> None:
    response = await client.get(f"/v1/orders?{query}", headers=tenant_a.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_list_shows_only_own_orders(client: Client, tenant_a: Tenant, tenant_b: Tenant) -> None:
    own = await create_order(client, tenant_a)
    foreign = await create_order(client, tenant_b)
    ids = {o["id"] for o in await _page_through(client, tenant_a, 100)}
    assert own["id"] in ids
    assert foreign["id"] not in ids
    # Filtering on B's product or customer finds nothing, exactly like a random value.
    stolen = await answer(client, tenant_a, "GET", f"/v1/orders?product_id={foreign['product_id']}")
    random = await answer(client, tenant_a, "GET", f"/v1/orders?product_id={uuid.uuid4()}")
    assert stolen == random == (200, b'{"data":[],"has_more":false,"next_cursor":null}')


# --- strict parameters and permissions --------------------------------------------------------------
# An id that is not a UUID, on every route with one: tests/integration/test_id_routes.py.


ROUTES = [
    ("GET", "", None),
    ("PATCH", "", {"customer_name": "x"}),
    ("POST", "/transitions", {"to": "processing"}),
    ("GET", "/history", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
async def test_an_unknown_query_parameter_is_400_and_changes_nothing(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    method: str,
    suffix: str,
    body: dict[str, object] | None,
) -> None:
    order = await create_order(client, tenant_a)
    before = await snapshot_business(admin_engine, tenant_a.id)
    response = await client.request(
        method, f"/v1/orders/{order['id']}{suffix}?force=true", json=body, headers=tenant_a.headers
    )
    assert_problem(response, 400, "unknown-query-parameter")
    body = {"product_id": order["product_id"], "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    assert_problem(
        await client.post("/v1/orders?dry_run=1", json=body, headers=tenant_a.headers), 400, "unknown-query-parameter"
    )
    assert await snapshot_business(admin_engine, tenant_a.id) == before


async def test_orders_need_their_own_permission(
    client: Client, admin_engine: AsyncEngine, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    order = await create_order(client, tenant_a)
    reader, _ = await provisioning.issue_token(
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="reader", permissions={"orders": "read"}
    )
    headers = {"Authorization": f"Bearer {reader.token}"}
    for path in (f"/v1/orders/{order['id']}", f"/v1/orders/{order['id']}/history", "/v1/orders"):
        assert (await client.get(path, headers=headers)).status_code == 200, path
    before = await snapshot_business(admin_engine, tenant_a.id)
    body = {"product_id": order["product_id"], "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}
    for method, path, json in (
        ("POST", "/v1/orders", body),
        ("PATCH", f"/v1/orders/{order['id']}", {"customer_name": "x"}),
        ("POST", f"/v1/orders/{order['id']}/transitions", {"to": "processing"}),
    ):
        response = await client.request(method, path, json=json, headers=headers)
        assert response.status_code == 403, path
        assert response.headers["x-accepted-permissions"] == "orders=write"
    assert await snapshot_business(admin_engine, tenant_a.id) == before


def test_viewers_read_orders_and_lookups_and_members_write_them() -> None:
    everything = role_permissions("owner")
    for resource in ("orders", "lookups"):
        assert effective_level("viewer", everything, resource) == "read"
        for role in ("owner", "admin", "member"):
            assert effective_level(role, everything, resource) == "write"


# --- cross-workspace ------------------------------------------------------------------------------
# Another workspace's ids on every route that takes one: tests/isolation/test_foreign_ids.py.


async def test_another_workspaces_tag_answers_exactly_like_an_unknown_one(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    own_tag = await create_lookup(client, tenant_a, kind="order_tag")
    foreign_tag = await create_lookup(client, tenant_b, kind="order_tag")
    product = await create_product(client, tenant_a)
    order = await create_order(client, tenant_a, product["id"], tag_ids=[own_tag["id"]])
    before_a = await snapshot_business(admin_engine, tenant_a.id)
    before_b = await snapshot_business(admin_engine, tenant_b.id)
    create = {"product_id": product["id"], "customer_email": "a@example.com", "customer_name": "A", "quantity": 1}

    for method, path, make in (
        ("POST", "/v1/orders", lambda t: {**create, "tag_ids": [own_tag["id"], str(t)]}),
        ("PATCH", f"/v1/orders/{order['id']}", lambda t: {"tag_ids": [own_tag["id"], str(t)]}),
    ):
        stolen = await answer(client, tenant_a, method, path, json=make(foreign_tag["id"]))
        random = await answer(client, tenant_a, method, path, json=make(uuid.uuid4()))
        assert stolen[0] == 422
        assert stolen == random
        assert b'"field":"tag_ids[1]","message":"unknown order tag"' in stolen[1]
    assert await snapshot_business(admin_engine, tenant_a.id) == before_a
    assert await snapshot_business(admin_engine, tenant_b.id) == before_b


async def test_below_the_api_a_row_of_a_cannot_name_bs_product_or_tag(
    client: Client,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    """The composite keys refuse it even as raw SQL of the tenant role (foreign-key checks ignore RLS)."""
    own = await create_order(client, tenant_a)
    foreign_product = await create_product(client, tenant_b)
    foreign_tag = await create_lookup(client, tenant_b, kind="order_tag")
    before_a = await snapshot_business(admin_engine, tenant_a.id)
    before_b = await snapshot_business(admin_engine, tenant_b.id)
    statements = [
        ("UPDATE public.orders SET product_id = :x WHERE id = :o", foreign_product["id"]),
        ("INSERT INTO public.order_tags (tenant_id, order_id, lookup_id) VALUES (:a, :o, :x)", foreign_tag["id"]),
    ]
    for sql, foreign_id in statements:
        async with app_engine.connect() as connection:
            await as_tenant(connection, settings, tenant_a.id)
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text(sql), {"a": tenant_a.id, "o": own["id"], "x": foreign_id})
            assert sqlstate_of(raised.value) == "23503"
    assert await snapshot_business(admin_engine, tenant_a.id) == before_a
    assert await snapshot_business(admin_engine, tenant_b.id) == before_b


# --- the platform side: export and workspace purge discover these tables --------------------------


async def test_workspace_export_and_purge_cover_every_business_table(
    client: Client, admin_engine: AsyncEngine, admin_headers: dict[str, str], tenant_b: Tenant
) -> None:
    """Purge deletes children first (tags and history, orders, products, then lookups) through the keys."""
    slug = f"biz-{uuid.uuid4().hex[:12]}"
    created = await client.post(
        "/admin/v1/workspaces",
        json={"slug": slug, "name": "Business", "owner_email": f"owner-{slug}@example.com"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["workspace"]["id"]
    owner = cast("Tenant", Caller({"Authorization": f"Bearer {created.json()['owner_token']}"}))

    category = await create_lookup(client, owner, kind="product_category")
    tag = await create_lookup(client, owner, kind="order_tag")
    product = await create_product(client, owner, category_id=category["id"])
    order = await create_order(client, owner, product["id"], tag_ids=[tag["id"]])
    assert (await _transition(client, owner, order["id"], "processing")).status_code == 200
    other = await create_order(
        client, tenant_b, tag_ids=[(await create_lookup(client, tenant_b, kind="order_tag"))["id"]]
    )
    assert other["tags"]
    before_b = await snapshot_business(admin_engine, tenant_b.id)

    expected = {"lookups": 2, "products": 1, "orders": 1, "order_status_history": 2, "order_tags": 1}
    for table, count in expected.items():
        exported = await client.get(f"/admin/v1/workspaces/{workspace_id}/export/{table}", headers=admin_headers)
        assert exported.status_code == 200, exported.text
        assert len(exported.content.splitlines()) == count, table

    scheduled = await client.post(
        f"/admin/v1/workspaces/{workspace_id}/schedule-deletion", json={"purge_after_days": 1}, headers=admin_headers
    )
    assert scheduled.status_code == 200, scheduled.text
    purged = await client.post(
        f"/admin/v1/workspaces/{workspace_id}/purge", json={"confirm_slug": slug}, headers=admin_headers
    )
    assert purged.status_code == 200, purged.text
    assert {table: purged.json()["deleted"][table] for table in expected} == expected
    for table in expected:
        assert await rows_of(admin_engine, table, uuid.UUID(workspace_id)) == [], table
    assert await snapshot_business(admin_engine, tenant_b.id) == before_b


async def test_removing_a_member_keeps_the_history_of_their_changes(
    client: Client,
    admin_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
    provisioning: ProvisioningService,
    tenant_a: Tenant,
) -> None:
    """The history outlives the member: removal only forgets who it was (ON DELETE SET NULL of that column)."""
    user_id, membership_id = uuid.uuid4(), uuid.uuid4()
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO public.users (id, email) VALUES (:id, :email)"),
            {"id": user_id, "email": f"clerk-{user_id.hex[:12]}@example.com"},
        )
    async with app_engine.begin() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        await connection.execute(
            text("INSERT INTO public.memberships (tenant_id, id, user_id, role) VALUES (:t, :id, :u, 'member')"),
            {"t": tenant_a.id, "id": membership_id, "u": user_id},
        )
    clerk, _ = await provisioning.issue_token(
        tenant_a.id, membership_id, name="clerk", permissions=role_permissions("member")
    )
    clerk_headers = {"Authorization": f"Bearer {clerk.token}"}
    order = await create_order(client, tenant_a)
    moved = await client.post(f"/v1/orders/{order['id']}/transitions", json={"to": "processing"}, headers=clerk_headers)
    assert moved.status_code == 200, moved.text
    assert (await _history(client, tenant_a, order["id"]))[-1]["changed_by_member_id"] == str(membership_id)

    removed = await client.delete(f"/v1/members/{membership_id}", headers=tenant_a.headers)
    assert removed.status_code == 204, removed.text
    history = await _history(client, tenant_a, order["id"])
    assert [(h["from_status"], h["to_status"], h["changed_by_member_id"]) for h in history] == [
        (None, "created", str(tenant_a.workspace.owner_membership_id)),
        ("created", "processing", None),
    ]
