"""A product's create and update read back the server-set columns with RETURNING, not a refresh.

A create is one Core `INSERT ... RETURNING` (in a `tenant_writes` transaction, or through the
session for a request with an Idempotency-Key); `Product` maps with eager_defaults, so the UPDATE
returns name_lower too. The service answers without a second SELECT of the row
(docs/performance.md). The answer still carries the values the database set.

Statements are recorded both where SQLAlchemy executes them (its cursor events) and where they go
straight to asyncpg (`tenant_reads` / `tenant_writes`: asyncpg's query logger on every connection
checked out meanwhile), in the order they ran.
"""

from __future__ import annotations

import gc
import uuid
from typing import Any

from litestar import Litestar
from sqlalchemy import event

from tenantry.tenancy.session import SET_CONTEXT_FUNCTION, TenantSession
from tests.support import Tenant
from tests.support.http import serve


def _record(app: Litestar, through_sqlalchemy: list[str] | None = None) -> tuple[list[str], Any]:
    """Every statement run on the app's engine from now on; `through_sqlalchemy` gets those that
    went through SQLAlchemy's execution (the others went to the driver directly)."""
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))
        if through_sqlalchemy is not None:
            through_sqlalchemy.append(statements[-1])

    def logged(query: Any) -> None:
        statements.append(" ".join(query.query.split()))

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(logged)

    engine = app.state.engine.sync_engine
    listeners = [(engine, "before_cursor_execute", before), (engine.pool, "checkout", checkout)]
    listeners.append((engine.pool, "checkin", checkin))
    for target, name, listener in listeners:
        event.listen(target, name, listener)

    def stop() -> None:
        for target, name, listener in listeners:
            event.remove(target, name, listener)

    return statements, stop


def _on_products(statements: list[str]) -> list[str]:
    return [s for s in statements if " products" in s and SET_CONTEXT_FUNCTION not in s]


async def test_create_and_update_read_back_with_returning(fresh_app: Litestar, tenant_a: Tenant) -> None:
    async with serve(fresh_app) as client:
        statements, stop = _record(fresh_app)
        body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": "RET-1"}
        created = await client.post("/v1/products", json=body, headers=tenant_a.headers)
        assert created.status_code == 201, created.text
        on_create = _on_products(statements)
        statements.clear()
        product = created.json()
        changed = await client.patch(f"/v1/products/{product['id']}", json={"name": "Gadget"}, headers=tenant_a.headers)
        assert changed.status_code == 200, changed.text
        on_update = _on_products(statements)
        stop()
    # The INSERT alone, returning what the database filled in; no SELECT of the row after it.
    assert len(on_create) == 1, on_create
    assert on_create[0].startswith("INSERT INTO products")
    assert "RETURNING" in on_create[0]
    assert product["created_at"]
    assert product["updated_at"]
    # The update: the locked read (If-Match and the current values), then the UPDATE with RETURNING.
    assert [s.split()[0] for s in on_update] == ["SELECT", "UPDATE"], on_update
    assert "RETURNING" in on_update[1]
    assert changed.json()["name"] == "Gadget"
    assert changed.json()["updated_at"] > product["updated_at"]
    got = await _get(fresh_app, tenant_a, product["id"])
    assert got == changed.json()  # what the answer said is what the database holds


async def _get(app: Litestar, tenant: Tenant, product_id: str) -> dict[str, Any]:
    async with serve(app) as client:
        response = await client.get(f"/v1/products/{product_id}", headers=tenant.headers)
        assert response.status_code == 200
        return dict(response.json())


async def test_startup_freezes_what_lives_as_long_as_the_worker(fresh_app: Litestar) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with serve(fresh_app):
        # Collections of the oldest generation no longer walk the app, its routes and schemas.
        assert gc.get_freeze_count() > 0


async def test_a_list_page_is_read_with_core_after_the_tenant_statement(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    orm_statements: list[str] = []

    def on_orm_execute(state: Any) -> None:
        orm_statements.append(str(state.statement))

    async with serve(fresh_app) as client:
        for tenant, sku in ((tenant_a, "CORE-A"), (tenant_b, "CORE-B")):
            body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": sku}
            assert (await client.post("/v1/products", json=body, headers=tenant.headers)).status_code == 201
        through_sqlalchemy: list[str] = []
        statements, stop = _record(fresh_app, through_sqlalchemy)
        event.listen(TenantSession, "do_orm_execute", on_orm_execute)
        try:
            listed = await client.get("/v1/products?limit=20", headers=tenant_a.headers)
        finally:
            event.remove(TenantSession, "do_orm_execute", on_orm_execute)
            stop()
    assert listed.status_code == 200
    assert [p["sku"] for p in listed.json()["data"]] == ["CORE-A"]  # tenant b's product is not there
    # No ORM execution for the page, nor SQLAlchemy's: the SELECT went to the driver as compiled
    # Core, in one transaction after the tenant statement.
    assert not [s for s in orm_statements if "products" in s], orm_statements
    assert _on_products(through_sqlalchemy) == [], through_sqlalchemy  # (a token lookup may run there)
    assert not [s for s in through_sqlalchemy if SET_CONTEXT_FUNCTION in s], through_sqlalchemy
    selects = [i for i, s in enumerate(statements) if s.startswith("SELECT products.")]
    tenant_statement = next(i for i, s in enumerate(statements) if SET_CONTEXT_FUNCTION in s)
    assert len(selects) == 1
    assert statements[tenant_statement - 1] == "BEGIN;"
    assert tenant_statement < selects[0]
    assert statements[selects[0] + 1] == "COMMIT;"


async def test_a_get_is_read_with_core_after_the_tenant_statement(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    orm_statements: list[str] = []

    def on_orm_execute(state: Any) -> None:
        orm_statements.append(str(state.statement))

    async with serve(fresh_app) as client:
        body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": "CORE-GET"}
        created = (await client.post("/v1/products", json=body, headers=tenant_a.headers)).json()
        through_sqlalchemy: list[str] = []
        statements, stop = _record(fresh_app, through_sqlalchemy)
        event.listen(TenantSession, "do_orm_execute", on_orm_execute)
        try:
            got = await client.get(f"/v1/products/{created['id']}", headers=tenant_a.headers)
            foreign = await client.get(f"/v1/products/{created['id']}", headers=tenant_b.headers)
        finally:
            event.remove(TenantSession, "do_orm_execute", on_orm_execute)
            stop()
    assert got.status_code == 200
    assert got.json() == created
    assert foreign.status_code == 404  # another workspace's id answers like one that never existed
    assert not [s for s in orm_statements if "products" in s], orm_statements
    assert _on_products(through_sqlalchemy) == [], through_sqlalchemy  # (a token lookup may run there)
    assert not [s for s in through_sqlalchemy if SET_CONTEXT_FUNCTION in s], through_sqlalchemy
    selects = [i for i, s in enumerate(statements) if s.startswith("SELECT products.")]
    tenant_statements = [i for i, s in enumerate(statements) if SET_CONTEXT_FUNCTION in s]
    assert len(selects) == 2
    assert tenant_statements[0] < selects[0] < tenant_statements[1] < selects[1]


async def test_reads_and_creates_that_fail_give_their_connection_back(
    fresh_app: Litestar, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """`tenant_reads` / `tenant_writes` hold a pooled connection of their own: every way a request can
    end (a conflict, a 404, a refused cursor, a foreign id) returns it, or the pool would drain."""
    async with serve(fresh_app) as client:
        pool = fresh_app.state.engine.sync_engine.pool
        body = {"name": "Widget", "price_cents": 100, "currency": "EUR", "sku": "POOL-1"}
        created = await client.post("/v1/products", json=body, headers=tenant_a.headers)
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        answers = [
            (await client.post("/v1/products", json=body, headers=tenant_a.headers)).status_code,
            (await client.get(f"/v1/products/{product_id}", headers=tenant_b.headers)).status_code,
            (await client.get(f"/v1/products/{uuid.uuid4()}", headers=tenant_a.headers)).status_code,
            (await client.get("/v1/products?cursor=a.b", headers=tenant_a.headers)).status_code,
            (await client.get("/v1/products?cursor=", headers=tenant_a.headers)).status_code,
            (await client.head(f"/v1/products/{product_id}", headers=tenant_a.headers)).status_code,
        ]
        assert answers == [409, 404, 404, 400, 200, 200]
        assert pool.checkedout() == 0
