"""The physical limit: a minimal ASGI app doing the products list's SQL on raw asyncpg.

Never a route of the real app. It takes the tenant from the `X-Tenant-Id` header (a benchmark
baseline verifies no token), and per request does in one transaction exactly what the full stack
does for `GET /v1/products?limit=20` once the token is known: the one statement that switches to
the tenant role and sets the tenant (tenancy/session.py's, compiled for asyncpg), then the very
SELECT the repository issues (captured from SQLAlchemy's compiled statement), answered as the same
`Page[ProductOut]` JSON with a signed next cursor. Served by the same server, with the same worker
count, pool size and login role as the API.

Routes:
- `GET /raw/products?limit=N`: the RLS-protected `products` table (scenario a, and b's subject);
- `GET /raw/products-norls?limit=N`: `bench.products_norls`, a copy without RLS, filtered by the
  same explicit `WHERE tenant_id = $1` (scenario b's baseline);
- `GET /raw/health`: readiness for the harness.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import msgspec
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from tenantry.catalog.models import Product
from tenantry.catalog.schemas import ProductFilters, ProductOut
from tenantry.catalog.service import SORTABLE
from tenantry.core.schemas import Page
from tenantry.db.server import _asyncpg_dsn
from tenantry.settings import Settings, load_settings
from tenantry.tenancy.pagination import MAX_LIMIT, Ordering, cursor_binding, cursor_key, encode_cursor
from tenantry.tenancy.session import positional_transaction_context

# In a schema of its own: the migrations' privilege statements cover schema public (they would
# trip over a table the migration owner does not own), and `tenantry audit` reads only public.
NORLS_SCHEMA = "bench"
NORLS_TABLE = f"{NORLS_SCHEMA}.products_norls"

# The session hook's statement with asyncpg's placeholders, and its arguments in their order.
SET_CONTEXT, SET_CONTEXT_ARGUMENTS = positional_transaction_context(asyncpg_dialect.dialect())  # type: ignore[no-untyped-call]
# The list's default order and filters, which its cursors are bound to.
ORDERING = Ordering.parse("created_at", SORTABLE, Product.id)
FILTERS = ProductFilters()
# What `ProductService.list(limit=20)` compiles to (see tests/integration/test_bench.py, which
# checks this text against the repository's query so the two cannot drift apart).
LIST_SQL = (
    "SELECT {t}.tenant_id, {t}.name, {t}.name_lower, {t}.description, {t}.price_cents, {t}.currency, "
    "{t}.sku, {t}.category_id, {t}.updated_at, {t}.deleted_at, {t}.id, {t}.created_at \n"
    "FROM {t} \n"
    "WHERE {t}.tenant_id = $1::UUID AND {t}.deleted_at IS NULL "
    "ORDER BY {t}.created_at ASC, {t}.id ASC \n LIMIT $2::INTEGER"
)
_FIELDS = tuple(ProductOut.__struct_fields__)
_JSON = [(b"content-type", b"application/json")]
_encoder = msgspec.json.Encoder()


class RawListApp:
    """A plain ASGI callable: no framework, no ORM, one asyncpg pool per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.key = cursor_key(settings.token_pepper)
        self.timeout = settings.db_statement_timeout_ms
        self.queries = {
            "/raw/products": LIST_SQL.format(t="products"),
            "/raw/products-norls": LIST_SQL.format(t=NORLS_TABLE),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            status, body = await self._handle(scope)
            await send({"type": "http.response.start", "status": status, "headers": _JSON})
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                dsn, kwargs = _asyncpg_dsn(self.settings.app_url.render_as_string(hide_password=False))
                # The API's engine holds up to pool_size + max_overflow connections: the same here.
                self.pool = await asyncpg.create_pool(
                    dsn,
                    min_size=1,
                    max_size=self.settings.db_pool_size + self.settings.db_max_overflow,
                    command_timeout=self.settings.db_statement_timeout_ms / 1000 + 1,
                    server_settings={"application_name": "tenantry-bench-raw"},
                    **kwargs,
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: dict[str, Any]) -> tuple[int, bytes]:
        path = scope["path"]
        if path == "/raw/health":
            return 200, b'{"status":"ok"}'
        sql = self.queries.get(path)
        if sql is None or scope["method"] != "GET":
            return 404, b'{"title":"Not found"}'
        tenant = _header(scope, b"x-tenant-id")
        try:
            tenant_id = uuid.UUID(tenant)
            limit = int(parse_qs(scope["query_string"].decode()).get("limit", ["20"])[0])
        except ValueError:
            return 400, b'{"title":"Bad request"}'
        if not 1 <= limit <= MAX_LIMIT:
            return 400, b'{"title":"Bad request"}'
        return 200, await self._list(sql, tenant_id, limit)

    async def _list(self, sql: str, tenant_id: uuid.UUID, limit: int) -> bytes:
        assert self.pool is not None
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                SET_CONTEXT,
                *SET_CONTEXT_ARGUMENTS(
                    role=self.settings.tenant_role, tenant_id=tenant_id, statement_timeout_ms=self.timeout
                ),
            )
            rows = await connection.fetch(sql, tenant_id, limit + 1)
        has_more = len(rows) > limit
        items = [ProductOut(**{name: row[name] for name in _FIELDS}) for row in rows[:limit]]
        next_cursor = None
        if has_more:
            binding = cursor_binding("products", tenant_id, FILTERS, ORDERING)
            next_cursor = encode_cursor(ORDERING.position_of(items[-1]), key=self.key, binding=binding)
        return _encoder.encode(Page(data=items, has_more=has_more, next_cursor=next_cursor))


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def create_raw_app_from_env() -> RawListApp:
    """Factory for the server's workers: the same environment as `tenantry serve`."""
    return RawListApp(load_settings())
