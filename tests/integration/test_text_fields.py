"""Every pattern-constrained and free-text field of the API refuses what its pattern excludes.

Python's `$` also matches before a final newline, and msgspec tests a pattern with `re.search`,
so `^...$` let "HC-1\\n" be created beside a live "HC-1", an invitation be stored for
"nl@example.test\\n" and a display name carry C1 controls; the patterns end with `\\Z`
(src/tenantry/core/schemas.py). The table below holds every such field of every create and
update body, the admin API's included; a coverage test keeps it complete as bodies grow.
Each refused request answers 422 (a body) or 400 (a query parameter) and stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.workspaces.tables import tenant_tables
from tests.support import Tenant, create_product
from tests.support.admin import workspace_body
from tests.support.business import assert_problem, create_lookup, create_order
from tests.support.http import Client
from tests.support.members import PASSWORD, invite, join, new_email

# Global tables a refused request must leave alone as well (one database per test worker).
PLATFORM_TABLES = ("workspaces", "users", "workspace_plans", "platform_audit_events", "auth_throttle")
# A token's use stamp moves with every authenticated request, refused or not.
USAGE_COLUMNS = ("last_used_at",)


@dataclass(frozen=True)
class Made:
    """What the update paths need: one of everything, in workspace A."""

    tenant: Tenant
    product: dict[str, Any]
    other_product: dict[str, Any]
    lookup: dict[str, Any]
    order: dict[str, Any]
    member_id: str
    member_email: str
    invitation_token: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with {product}, {lookup}, {order}, {member} or {workspace}
    valid_body: Callable[[Made], dict[str, Any]]
    admin: bool = False
    public: bool = False

    def url(self, made: Made) -> str:
        return self.path.format(
            product=made.product["id"],
            lookup=made.lookup["id"],
            order=made.order["id"],
            member=made.member_id,
            workspace=made.tenant.id,
        )


def _hex() -> str:
    return uuid.uuid4().hex[:10]


OPERATIONS: dict[str, Operation] = {
    "createProduct": Operation(
        "POST",
        "/v1/products",
        lambda m: {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": f"N-{_hex()}"},
    ),
    "updateProduct": Operation("PATCH", "/v1/products/{product}", lambda m: {}),
    "createLookup": Operation(
        "POST", "/v1/lookups", lambda m: {"kind": "product_category", "code": f"c-{_hex()}", "name": "Entry"}
    ),
    "updateLookup": Operation("PATCH", "/v1/lookups/{lookup}", lambda m: {}),
    "createOrder": Operation(
        "POST",
        "/v1/orders",
        lambda m: {
            "product_id": m.product["id"],
            "customer_email": "ada@example.com",
            "customer_name": "Ada",
            "quantity": 1,
        },
    ),
    "updateOrder": Operation("PATCH", "/v1/orders/{order}", lambda m: {}),
    "createInvitation": Operation("POST", "/v1/invitations", lambda m: {"email": new_email("nl"), "role": "member"}),
    "acceptInvitation": Operation(
        "POST", "/v1/invitations/accept", lambda m: {"token": m.invitation_token}, public=True
    ),
    "updateMyProfile": Operation("PATCH", "/v1/members/me", lambda m: {}),
    "updateMember": Operation("PATCH", "/v1/members/{member}", lambda m: {}),
    "createToken": Operation("POST", "/v1/tokens", lambda m: {}),
    "createTokenWithPassword": Operation(
        "POST",
        "/v1/auth/token",
        lambda m: {"email": m.member_email, "password": PASSWORD, "workspace": m.tenant.workspace.slug},
        public=True,
    ),
    "createWorkspace": Operation("POST", "/admin/v1/workspaces", lambda m: workspace_body(), admin=True),
    "updateWorkspace": Operation("PATCH", "/admin/v1/workspaces/{workspace}", lambda m: {}, admin=True),
    "purgeWorkspace": Operation("POST", "/admin/v1/workspaces/{workspace}/purge", lambda m: {}, admin=True),
}

# Names and other one-line text: no control character at all (C0 with tab and newline, DEL, C1).
NAME = ("Ada\n", "Ada\tLovelace", "Ada\u0085", "5_\u008d\u0092\n")
# Free text: tabs and line feeds are fine (a trailing one too); other controls, CR included, are not.
TEXT = ("Line\x00", "Line\r\n", "Line\u009b31m")

Value = str | Callable[[Made], str]

# (operation, field): the values it refuses. One that its pattern refuses only for the trailing
# newline is built from a valid value (test_the_valid_values_... shows those pass).
FIELDS: dict[tuple[str, str], tuple[Value, ...]] = {
    ("createProduct", "name"): NAME,
    ("createProduct", "description"): TEXT,
    ("createProduct", "currency"): ("EUR\n",),
    # The reported one: "HC-1\n" was created beside a live "HC-1".
    ("createProduct", "sku"): (lambda m: m.product["sku"] + "\n",),
    ("updateProduct", "name"): NAME,
    ("updateProduct", "description"): TEXT,
    ("updateProduct", "currency"): ("USD\n",),
    ("updateProduct", "sku"): (lambda m: m.other_product["sku"] + "\n", lambda m: m.product["sku"] + "\n"),
    ("createLookup", "code"): (lambda m: m.lookup["code"] + "\n", "express\n"),
    ("createLookup", "name"): NAME,
    ("createLookup", "description"): TEXT,
    ("createLookup", "color"): ("#1E88E5\n",),
    ("updateLookup", "code"): ("renamed\n",),
    ("updateLookup", "name"): NAME,
    ("updateLookup", "description"): TEXT,
    ("updateLookup", "color"): ("#1E88E5\n",),
    ("createOrder", "customer_email"): ("ada@example.com\n",),
    ("createOrder", "customer_name"): NAME,
    ("updateOrder", "customer_name"): NAME,
    ("createInvitation", "email"): ("nl@example.test\n",),
    ("acceptInvitation", "display_name"): NAME,
    ("updateMyProfile", "display_name"): NAME,
    ("updateMember", "display_name"): NAME,
    ("createToken", "name"): NAME,
    ("createTokenWithPassword", "name"): NAME,
    ("createWorkspace", "slug"): (lambda m: f"acme-{_hex()}\n",),
    ("createWorkspace", "name"): NAME,
    ("createWorkspace", "owner_email"): (lambda m: new_email("owner") + "\n",),
    ("createWorkspace", "owner_display_name"): NAME,
    ("createWorkspace", "external_id"): ("cus_123\n", "cus\u0085123"),
    ("updateWorkspace", "name"): NAME,
    ("updateWorkspace", "external_id"): ("cus_123\n", "cus\u0085123"),
    ("purgeWorkspace", "confirm_slug"): (lambda m: m.tenant.workspace.slug + "\n",),
}


@pytest.fixture
async def made(client: Client, tenant_a: Tenant) -> Made:
    product = await create_product(client, tenant_a, sku=f"HC-{_hex()}")
    other = await create_product(client, tenant_a, sku=f"HC-{_hex()}")
    lookup = await create_lookup(client, tenant_a)
    order = await create_order(client, tenant_a, product_id=product["id"])
    member = await join(client, tenant_a, "member")
    invitation = await invite(client, tenant_a.headers, new_email("pending"))
    return Made(
        tenant=tenant_a,
        product=product,
        other_product=other,
        lookup=lookup,
        order=order,
        member_id=member.id,
        member_email=member.email,
        invitation_token=str(invitation["token"]),
    )


async def stored(admin_engine: AsyncEngine) -> dict[str, list[str]]:
    """Every row of every tenant table and of the platform tables, as text, past RLS."""
    tables = [table.name for table in tenant_tables()] + list(PLATFORM_TABLES)
    strip = " - ".join(f"'{column}'" for column in USAGE_COLUMNS)
    async with admin_engine.connect() as connection:
        return {
            table: list(
                (
                    await connection.execute(
                        text(f"SELECT (to_jsonb(t) - {strip})::text FROM public.{table} t ORDER BY 1")
                    )
                )
                .scalars()
                .all()
            )
            for table in tables
        }


@pytest.mark.parametrize(("operation", "field"), list(FIELDS), ids=[f"{o}-{f}" for o, f in FIELDS])
async def test_a_refused_text_value_answers_422_and_stores_nothing(
    client: Client, admin_engine: AsyncEngine, admin_headers: dict[str, str], made: Made, operation: str, field: str
) -> None:
    spec = OPERATIONS[operation]
    headers = admin_headers if spec.admin else {} if spec.public else made.tenant.headers
    for value in FIELDS[(operation, field)]:
        refused = value if isinstance(value, str) else value(made)
        before = await stored(admin_engine)

        response = await client.request(
            spec.method, spec.url(made), json={**spec.valid_body(made), field: refused}, headers=headers
        )

        body = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in body["errors"]] == [field], (refused, body)
        assert "\\Z" not in response.text  # a pattern is quoted as the document spells it
        assert await stored(admin_engine) == before, refused


@pytest.mark.parametrize(
    "query",
    ["/admin/v1/workspaces?status=active%0A", "/admin/v1/audit-events?action=workspace.created%0A"],
)
async def test_a_refused_query_value_answers_400(client: Client, admin_headers: dict[str, str], query: str) -> None:
    response = await client.get(query, headers=admin_headers)
    assert_problem(response, 400, "bad-request")
    assert "\\Z" not in response.text, response.text
    assert (await client.get(query.removesuffix("%0A"), headers=admin_headers)).status_code == 200


async def test_the_valid_values_the_cases_are_built_from_are_accepted(
    client: Client, admin_headers: dict[str, str], made: Made
) -> None:
    """So each refusal above is the newline's or the control's doing, not the rest of the value's."""
    product = await client.post(
        "/v1/products",
        json={
            "name": "Ada Lovelace",
            "price_cents": 1,
            "currency": "EUR",
            "sku": f"HC-{_hex()}",
            "description": "a\tb\n",
        },
        headers=made.tenant.headers,
    )
    assert product.status_code == 201, product.text
    assert product.json()["description"] == "a\tb\n"
    lookup = await client.post(
        "/v1/lookups",
        json={"kind": "order_tag", "code": "express", "name": "Express", "color": "#1E88E5"},
        headers=made.tenant.headers,
    )
    assert lookup.status_code == 201, lookup.text
    profile = await client.patch("/v1/members/me", json={"display_name": "5_ Ada"}, headers=made.tenant.headers)
    assert profile.status_code == 200, profile.text
    invitation = await client.post(
        "/v1/invitations", json={"email": "nl@example.test", "role": "member"}, headers=made.tenant.headers
    )
    assert invitation.status_code == 201, invitation.text
    workspace = await client.post(
        "/admin/v1/workspaces", json=workspace_body(external_id=f"cus_{_hex()}"), headers=admin_headers
    )
    assert workspace.status_code == 201, workspace.text


def _patterned_fields(annotation: Any) -> set[str]:
    """The names of a body type's string fields that carry a pattern, through unions and nesting."""
    found: set[str] = set()

    def walk(info: msgspec.inspect.Type, name: str) -> None:
        if isinstance(info, msgspec.inspect.StrType) and info.pattern is not None:
            found.add(name)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                walk(member, name)
        elif isinstance(info, msgspec.inspect.StructType):
            for struct_field in info.fields:
                walk(struct_field.type, struct_field.encode_name)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
            walk(info.item_type, name)
        elif isinstance(info, msgspec.inspect.DictType):
            walk(info.value_type, name)

    walk(msgspec.inspect.type_info(annotation), "body")
    return found


def test_the_table_covers_every_patterned_field_of_every_body(app: Litestar) -> None:
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None:
                served |= {(str(handler.operation_id), field) for field in _patterned_fields(data.annotation)}
    assert served, "no body with a pattern found: the walk is broken"
    assert served <= set(FIELDS), sorted(served - set(FIELDS))
    assert {operation for operation, _ in FIELDS} <= set(OPERATIONS)
