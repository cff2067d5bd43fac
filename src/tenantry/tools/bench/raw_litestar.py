"""The framework's limit: a Litestar app whose handlers run the API's statements on raw asyncpg.

Never a route of the real app. Where raw_app.py measures what the hardware allows without any
framework, this one measures what Litestar allows: the same server, Litestar routing, parameter
parsing and msgspec encoding, but no ORM, no middleware, no token (the tenant comes from the
`X-Tenant-Id` header, as in raw_app.py). Per request, in one transaction on one pooled connection,
it runs exactly the statements the API runs once the token is known:

- the one statement that switches to the tenant role and sets the tenant
  (`positional_transaction_context`, tenancy/session.py's own statement);
- list: the keyset SELECT of `GET /v1/products?limit=20` (raw_app.LIST_SQL, checked against the
  repository's query by tests/integration/test_bench.py), answered with a signed next cursor;
- get: the SELECT of one live product by id, the repository's own statement (`BY_ID`);
- create: the repository's `INSERT ... RETURNING` of the product and the INSERT of its audit
  event, as `ProductService.create` does.

Served with the same workers, pool size (`pool_size + max_overflow`) and login role as the API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import msgspec
from litestar import Litestar, Request, get, post
from litestar.exceptions import NotFoundException
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from tenantry.auditlog.recorder import INSERT_EVENT
from tenantry.catalog.models import Product
from tenantry.catalog.repository import BY_ID, INSERT
from tenantry.catalog.schemas import ProductCreate, ProductOut
from tenantry.core.ids import uuid7
from tenantry.core.schemas import Page
from tenantry.db.server import _asyncpg_dsn
from tenantry.settings import Settings, load_settings
from tenantry.tenancy.pagination import cursor_binding, cursor_key, encode_cursor
from tenantry.tools.bench.raw_app import FILTERS, LIST_SQL, ORDERING, SET_CONTEXT, SET_CONTEXT_ARGUMENTS

_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
_PRODUCTS = cast("Table", Product.__table__)
_FIELDS = tuple(ProductOut.__struct_fields__)


def _positional(statement: Any) -> tuple[str, tuple[str, ...]]:
    """`statement` compiled for asyncpg ($1, $2 ...), and the names of its parameters in order."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), tuple(compiled.positiontup or ())


# The repository's own statements: a live product by id (its tenant filter, the id, live only),
# and the INSERT that returns the answer's columns (no second statement to read them).
GET_SQL, GET_PARAMETERS = _positional(BY_ID[True])
INSERT_SQL, INSERT_PARAMETERS = _positional(INSERT)
# The audit event `record_event` adds in the same transaction.
AUDIT_SQL, AUDIT_PARAMETERS = _positional(INSERT_EVENT)


def _arguments(order: tuple[str, ...], values: dict[str, Any]) -> list[Any]:
    # The repository's tenant filter binds an anonymous parameter (tenant_id_1): it is the tenant.
    return [values["tenant_id" if name.startswith("tenant_id") else name] for name in order]


def _tenant(request: Request[Any, Any, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(request.headers.get("x-tenant-id", ""))
    except ValueError:
        raise NotFoundException() from None


def _out(row: asyncpg.Record) -> ProductOut:
    return ProductOut(**{name: row[name] for name in _FIELDS})


def create_raw_litestar_app(settings: Settings) -> Litestar:
    key = cursor_key(settings.token_pepper)
    context = {"role": settings.tenant_role, "statement_timeout_ms": settings.db_statement_timeout_ms}
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        dsn, kwargs = _asyncpg_dsn(settings.app_url.render_as_string(hide_password=False))
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=settings.db_pool_size + settings.db_max_overflow,
            command_timeout=settings.db_statement_timeout_ms / 1000 + 1,
            server_settings={"application_name": "tenantry-bench-litestar"},
            **kwargs,
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    @get("/raw/health", sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/raw/products")
    async def list_products(request: Request[Any, Any, Any], limit: int = 20) -> Page[ProductOut]:
        tenant_id = _tenant(request)
        async with pools[0].acquire() as connection, connection.transaction():
            await connection.execute(SET_CONTEXT, *SET_CONTEXT_ARGUMENTS(tenant_id=tenant_id, **context))
            rows = await connection.fetch(LIST_SQL.format(t="products"), tenant_id, limit + 1)
        has_more = len(rows) > limit
        items = [_out(row) for row in rows[:limit]]
        next_cursor = None
        if has_more:
            binding = cursor_binding("products", tenant_id, FILTERS, ORDERING)
            next_cursor = encode_cursor(ORDERING.position_of(items[-1]), key=key, binding=binding)
        return Page(data=items, has_more=has_more, next_cursor=next_cursor)

    @get("/raw/products/{product_id:uuid}")
    async def get_product(request: Request[Any, Any, Any], product_id: uuid.UUID) -> ProductOut:
        tenant_id = _tenant(request)
        async with pools[0].acquire() as connection, connection.transaction():
            await connection.execute(SET_CONTEXT, *SET_CONTEXT_ARGUMENTS(tenant_id=tenant_id, **context))
            row = await connection.fetchrow(
                GET_SQL, *_arguments(GET_PARAMETERS, {"tenant_id": tenant_id, "id": product_id})
            )
        if row is None:
            raise NotFoundException()
        return _out(row)

    @post("/raw/products", status_code=201)
    async def create_product(request: Request[Any, Any, Any], data: ProductCreate) -> ProductOut:
        tenant_id = _tenant(request)
        product_id = uuid7()
        async with pools[0].acquire() as connection, connection.transaction():
            await connection.execute(SET_CONTEXT, *SET_CONTEXT_ARGUMENTS(tenant_id=tenant_id, **context))
            product = {**msgspec.structs.asdict(data), "tenant_id": tenant_id, "id": product_id}
            row = await connection.fetchrow(INSERT_SQL, *_arguments(INSERT_PARAMETERS, product))
            event = {
                "tenant_id": tenant_id,
                "id": uuid7(),
                "actor_type": "member",
                "actor_member_id": None,
                "actor_admin_token_id": None,
                "token_fingerprint": None,
                "request_id": None,
                "action": "product.created",
                "target_type": "product",
                "target_id": str(product_id),
                "details": "{}",
            }
            await connection.execute(AUDIT_SQL, *_arguments(AUDIT_PARAMETERS, event))
        assert row is not None
        return _out(row)

    return Litestar(
        route_handlers=[health, list_products, get_product, create_product],
        lifespan=[lifespan],
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


def create_raw_litestar_app_from_env() -> Litestar:
    """Factory for the server's workers: the same environment as `tenantry serve`."""
    return create_raw_litestar_app(load_settings())
