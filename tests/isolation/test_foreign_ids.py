"""Contract rule 6, stated once for every tenant route that takes an id (docs/security.md).

Workspace A sends B's id: the answer is 404, byte for byte the answer to a random id that never
existed, and none of B's rows change (every tenant table, read past RLS), whatever the method, the
state of B's row (deleted, in use, inactive, the owner's) or an If-Match carrying B's own ETag. B's
owner token still works afterwards. `test_every_tenant_route_with_an_id_is_in_the_table` fails when
a new route with an id is not in CASES, so the table stays the whole contract.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import (
    Client,
    Tenant,
    create_lookup,
    create_order,
    create_product,
    invite,
    join,
    new_email,
    snapshot_workspace,
)
from tests.support.routes import generic, served_id_routes

Make = Callable[[Client, Tenant], Awaitable[str]]


# --- B's rows, in every state a route treats differently -------------------------------------------


async def product(client: Client, b: Tenant) -> str:
    return str((await create_product(client, b))["id"])


async def deleted_product(client: Client, b: Tenant) -> str:
    """Restore only ever touches deleted rows, and purge treats them apart."""
    product_id = await product(client, b)
    assert (await client.delete(f"/v1/products/{product_id}", headers=b.headers)).status_code == 204
    return product_id


async def deleted_product_with_orders(client: Client, b: Tenant) -> str:
    product_id = await product(client, b)
    await create_order(client, b, product_id)
    assert (await client.delete(f"/v1/products/{product_id}", headers=b.headers)).status_code == 204
    return product_id


async def category_in_use(client: Client, b: Tenant) -> str:
    """In use by one of B's products: a 409 'in use' would tell A that it exists."""
    category = await create_lookup(client, b, kind="product_category")
    await create_product(client, b, category_id=category["id"])
    return str(category["id"])


async def order_tag(client: Client, b: Tenant) -> str:
    return str((await create_lookup(client, b, kind="order_tag"))["id"])


async def tagged_order(client: Client, b: Tenant) -> str:
    tag = await create_lookup(client, b, kind="order_tag")
    return str((await create_order(client, b, tag_ids=[tag["id"]]))["id"])


async def order(client: Client, b: Tenant) -> str:
    return str((await create_order(client, b))["id"])


async def member(client: Client, b: Tenant) -> str:
    return (await join(client, b, "member")).id


async def inactive_member(client: Client, b: Tenant) -> str:
    """Reactivation only changes an inactive member."""
    member_id = await member(client, b)
    assert (await client.post(f"/v1/members/{member_id}/deactivate", headers=b.headers)).status_code == 200
    return member_id


async def owner(client: Client, b: Tenant) -> str:
    return str(b.workspace.owner_membership_id)


async def invitation(client: Client, b: Tenant) -> str:
    return str((await invite(client, b.headers, new_email()))["id"])


async def owner_token(client: Client, b: Tenant) -> str:
    return str(b.workspace.token_id)


# --- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    route: str  # "METHOD /v1/path/{id}/more": the id goes where {id} is
    make: Make
    body: dict[str, Any] | None = None
    query: str = ""
    if_match: bool = False  # send B's own ETag of the row, as a client that guessed it would

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    def path(self, row_id: object) -> str:
        return self.route.split(" ", 1)[1].replace("{id}", str(row_id)) + self.query

    def __str__(self) -> str:
        extras = [self.make.__name__, *([self.query] if self.query else []), *(["If-Match"] if self.if_match else [])]
        body = ",".join(f"{k}={v}" for k, v in (self.body or {}).items())
        return " ".join([self.route, *extras, *([body] if body else [])])


PRODUCT, LOOKUP, ORDER = "/v1/products/{id}", "/v1/lookups/{id}", "/v1/orders/{id}"
MEMBER, INVITATION, TOKEN = "/v1/members/{id}", "/v1/invitations/{id}", "/v1/tokens/{id}"

CASES = [
    # products
    Case(f"GET {PRODUCT}", product),
    Case(f"GET {PRODUCT}", product, query="?include_deleted=true"),
    Case(f"PATCH {PRODUCT}", product, {"name": "stolen", "price_cents": 0}),
    Case(f"DELETE {PRODUCT}", product),
    Case(f"POST {PRODUCT}/restore", deleted_product),
    Case(f"POST {PRODUCT}/purge", product),
    Case(f"POST {PRODUCT}/purge", deleted_product),
    Case(f"POST {PRODUCT}/purge", deleted_product_with_orders),
    # lookups
    Case(f"GET {LOOKUP}", category_in_use),
    Case(f"PATCH {LOOKUP}", category_in_use, {"name": "stolen"}),
    Case(f"PATCH {LOOKUP}", category_in_use, {"kind": "order_tag"}),
    Case(f"DELETE {LOOKUP}", category_in_use),
    Case(f"PATCH {LOOKUP}", order_tag, {"name": "stolen"}, if_match=True),
    Case(f"DELETE {LOOKUP}", order_tag, if_match=True),
    # orders
    Case(f"GET {ORDER}", tagged_order),
    Case(f"PATCH {ORDER}", tagged_order, {"customer_name": "x"}),
    Case(f"PATCH {ORDER}", tagged_order, {"tag_ids": []}),
    Case(f"POST {ORDER}/transitions", tagged_order, {"to": "processing"}),
    Case(f"POST {ORDER}/transitions", tagged_order, {"to": "cancelled"}),
    Case(f"GET {ORDER}/history", tagged_order),
    Case(f"PATCH {ORDER}", order, {"customer_name": "x"}, if_match=True),
    Case(f"POST {ORDER}/transitions", order, {"to": "paid"}, if_match=True),
    # members: a plain member and the owner
    *(
        case
        for target in (member, owner)
        for case in (
            Case(f"GET {MEMBER}", target),
            Case(f"PATCH {MEMBER}", target, {"role": "viewer"}),
            Case(f"PATCH {MEMBER}", target, {"display_name": "stolen"}),
            Case(f"POST {MEMBER}/deactivate", target),
            Case(f"DELETE {MEMBER}", target),
        )
    ),
    Case(f"POST {MEMBER}/reactivate", inactive_member),
    Case(f"POST {MEMBER}/reactivate", owner),
    # invitations
    Case(f"GET {INVITATION}", invitation),
    Case(f"POST {INVITATION}/revoke", invitation),
    # tokens
    Case(f"GET {TOKEN}", owner_token),
    Case(f"DELETE {TOKEN}", owner_token),
    Case(f"POST {TOKEN}/rotate", owner_token),
    Case(f"POST {TOKEN}/rotate", owner_token, {"grace_period_seconds": 60}),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_another_workspaces_id_answers_exactly_like_a_random_id_and_changes_nothing(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant, case: Case
) -> None:
    foreign_id = await case.make(client, tenant_b)
    headers = dict(tenant_a.headers)
    if case.if_match:
        resource = "/".join(case.path(foreign_id).split("/")[:4])  # /v1/orders/<id>, as B reads it
        own = await client.get(resource, headers=tenant_b.headers)
        assert own.status_code == 200, own.text
        headers["If-Match"] = own.headers["etag"]
    kwargs: dict[str, Any] = {"json": case.body} if case.body is not None else {}
    before = await snapshot_workspace(admin_engine, tenant_b.id)

    foreign = await client.request(case.method, case.path(foreign_id), headers=headers, **kwargs)
    random = await client.request(case.method, case.path(uuid.uuid4()), headers=headers, **kwargs)

    assert foreign.status_code == 404, foreign.text
    assert (foreign.status_code, foreign.content) == (random.status_code, random.content)
    assert await snapshot_workspace(admin_engine, tenant_b.id) == before
    assert (await client.get("/v1/whoami", headers=tenant_b.headers)).status_code == 200


def test_every_tenant_route_with_an_id_is_in_the_table(app: Litestar) -> None:
    served = {f"{method} {generic(path)}" for method, path in served_id_routes(app)}
    assert len(served) >= 18
    assert served == {case.route for case in CASES}
