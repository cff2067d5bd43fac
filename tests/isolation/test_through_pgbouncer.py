"""Tenant isolation through a real PgBouncer in transaction pool mode.

The app connects through PgBouncer (`app_database_url`) with the prepared-statement caches off
(`db_statement_cache=False`, as PgBouncer < 1.21 needs). The app's own pool holds more connections
than PgBouncer's server pool, so thousands of interleaved transactions of many workspaces share
four server connections: each transaction lands on a server connection that just served some other
workspace, often one whose transaction failed after the tenant was set. The test proves from
PgBouncer's admin console that this multiplexing really happened, and that no response carried a
row of another workspace.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx
import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.app import create_app
from tenantry.settings import Settings
from tests.isolation.conftest_pgbouncer import PgBouncer, pgbouncer_fixture  # noqa: F401 - the fixture
from tests.support import Tenant, serve

WORKSPACES = 20
PER_WORKSPACE = 100  # 2000 requests
# Per workspace: 40 lists, 20 duplicate-SKU creates and 20 PATCHes to a taken SKU (both fail inside
# the transaction, after the tenant was set), 10 creates that commit, 10 GETs of a foreign id.
MIX = ("list",) * 40 + ("dup",) * 20 + ("patch",) * 20 + ("create",) * 10 + ("foreign",) * 10
EXPECTED_STATUS = {"list": 200, "dup": 409, "patch": 409, "create": 201, "foreign": 404}
APP_POOL = 16
APP_OVERFLOW = 8


def through_pgbouncer(settings: Settings, pgbouncer: PgBouncer, *, statement_cache: bool) -> Settings:
    """The app's settings, connecting through PgBouncer with an app pool larger than its server pool."""
    assert pgbouncer.pool_size < APP_POOL + APP_OVERFLOW
    return msgspec.structs.replace(
        settings,
        app_database_url=pgbouncer.app_url,
        db_statement_cache=statement_cache,
        db_pool_size=APP_POOL,
        db_max_overflow=APP_OVERFLOW,
        db_pool_timeout_s=120.0,
    )


async def add_product(client: httpx.AsyncClient, tenant: Tenant, name: str) -> dict[str, object]:
    body = {"name": name, "price_cents": 1999, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
    response = await client.post("/v1/products", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@dataclass
class Outcome:
    kind: str
    tenant: str
    status: int
    started: float
    ended: float
    seen: set[str] = field(default_factory=set)
    names: list[str] = field(default_factory=list)
    created: str | None = None


@dataclass
class Observed:
    """What the admin console showed while the requests ran."""

    samples: int = 0
    max_server_connections: int = 0
    max_client_connections: int = 0
    max_clients_waiting: int = 0
    server_pids: set[str] = field(default_factory=set)


async def watch(pgbouncer: PgBouncer, observed: Observed, stop: asyncio.Event) -> None:
    while not stop.is_set():
        pool = await pgbouncer.pool()
        servers = [row for row in await pgbouncer.show("SERVERS") if row["database"] == pgbouncer.database]
        server_count = sum(int(pool[k] or 0) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
        observed.samples += 1
        observed.max_server_connections = max(observed.max_server_connections, server_count, len(servers))
        observed.max_client_connections = max(
            observed.max_client_connections, int(pool["cl_active"] or 0) + int(pool["cl_waiting"] or 0)
        )
        observed.max_clients_waiting = max(observed.max_clients_waiting, int(pool["cl_waiting"] or 0))
        # remote_pid is 0 while PgBouncer still logs a new server connection in
        observed.server_pids.update(str(row["remote_pid"]) for row in servers if row["remote_pid"] != "0")
        await asyncio.sleep(0.02)


async def prepared_statements_on_servers(pgbouncer: PgBouncer) -> dict[str, int]:
    """pid -> prepared statements held, for every server connection of the pool.

    As many concurrent open transactions as the pool has server connections each pin a different
    one, so every server connection is looked at.
    """
    connections = [
        await asyncpg.connect(
            host="127.0.0.1",
            port=pgbouncer.port,
            user=pgbouncer.app_user,
            password=pgbouncer.app_password,
            database=pgbouncer.database,
            statement_cache_size=0,
        )
        for _ in range(pgbouncer.pool_size)
    ]
    try:
        for connection in connections:
            await connection.execute("BEGIN")
        rows = await asyncio.gather(
            *(
                c.fetchrow("SELECT pg_backend_pid()::text AS pid, count(*) AS n FROM pg_prepared_statements")
                for c in connections
            )
        )
        for connection in connections:
            await connection.execute("ROLLBACK")
    finally:
        for connection in connections:
            await connection.close()
    counts = {str(row["pid"]): int(row["n"]) for row in rows if row is not None}
    assert len(counts) == pgbouncer.pool_size, counts  # each open transaction had a server of its own
    return counts


async def test_no_foreign_rows_through_pgbouncer_in_transaction_mode(
    settings: Settings,
    pgbouncer: PgBouncer,
    make_tenant,  # type: ignore[no-untyped-def]
    admin_engine: AsyncEngine,
) -> None:
    app = create_app(through_pgbouncer(settings, pgbouncer, statement_cache=False))
    tenants: list[Tenant] = [await make_tenant(f"pgb{i}") for i in range(WORKSPACES)]
    async with serve(app) as client:
        initial: dict[str, set[str]] = {}
        skus: dict[str, list[str]] = {}
        ids: dict[str, list[str]] = {}
        for tenant in tenants:
            products = [await add_product(client, tenant, f"{tenant.id} item {n}") for n in range(3)]
            initial[str(tenant.id)] = {str(p["id"]) for p in products}
            ids[str(tenant.id)] = [str(p["id"]) for p in products]
            skus[str(tenant.id)] = [str(p["sku"]) for p in products]
        stats_before = await pgbouncer.stats()

        async def one(kind: str, tenant: Tenant, other: Tenant) -> Outcome:
            key = str(tenant.id)
            started = time.monotonic()
            created = None
            seen: set[str] = set()
            names: list[str] = []
            if kind == "dup":  # unique violation inside the transaction, after the tenant was set
                body = {"name": "dup", "price_cents": 1, "currency": "EUR", "sku": skus[key][0]}
                response = await client.post("/v1/products", json=body, headers=tenant.headers)
            elif kind == "patch":  # the same, through an UPDATE of another product
                response = await client.patch(
                    f"/v1/products/{ids[key][1]}", json={"sku": skus[key][0]}, headers=tenant.headers
                )
            elif kind == "create":
                body = {"name": f"{key} new", "price_cents": 5, "currency": "EUR", "sku": f"N-{uuid.uuid4().hex[:12]}"}
                response = await client.post("/v1/products", json=body, headers=tenant.headers)
                if response.status_code == 201:
                    created = str(response.json()["id"])
            elif kind == "foreign":  # another workspace's product: 404, as for an id that never existed
                response = await client.get(f"/v1/products/{ids[str(other.id)][2]}", headers=tenant.headers)
            else:
                response = await client.get("/v1/products?limit=100", headers=tenant.headers)
                if response.status_code == 200:
                    page = response.json()
                    assert page["next_cursor"] is None, "the test expects one page per workspace"
                    seen = {str(p["id"]) for p in page["data"]}
                    names = [str(p["name"]) for p in page["data"]]
            return Outcome(kind, key, response.status_code, started, time.monotonic(), seen, names, created)

        plan = [(kind, t) for t in range(WORKSPACES) for kind in MIX]
        random.Random(20).shuffle(plan)  # interleave workspaces and kinds
        observed, stop = Observed(), asyncio.Event()
        watcher = asyncio.create_task(watch(pgbouncer, observed, stop))
        try:
            results = await asyncio.gather(*(one(kind, tenants[t], tenants[(t + 1) % WORKSPACES]) for kind, t in plan))
        finally:
            stop.set()
            await watcher
        stats_after = await pgbouncer.stats()
        final_servers = [row for row in await pgbouncer.show("SERVERS") if row["database"] == pgbouncer.database]
        left_behind = await prepared_statements_on_servers(pgbouncer)

        # Afterwards, one by one: each workspace lists exactly its own products.
        creates = [r for r in results if r.kind == "create" and r.created]
        owned = {key: set(initial[key]) for key in initial}
        for r in creates:
            owned[r.tenant].add(str(r.created))
        for tenant in tenants:
            response = await client.get("/v1/products?limit=100", headers=tenant.headers)
            assert {str(p["id"]) for p in response.json()["data"]} == owned[str(tenant.id)]

    requests = WORKSPACES * PER_WORKSPACE
    assert len(MIX) == PER_WORKSPACE
    assert len(results) == requests >= 2000
    statuses = Counter((r.kind, r.status) for r in results)
    expected = Counter({(kind, EXPECTED_STATUS[kind]): n * WORKSPACES for kind, n in Counter(MIX).items()})
    assert statuses == expected, statuses

    # Every list shows exactly its workspace's products: all that existed before it started, and
    # of the concurrent creates, none that had not begun before it ended.
    foreign_rows = 0
    for r in results:
        if r.kind != "list":
            continue
        must = initial[r.tenant] | {str(c.created) for c in creates if c.tenant == r.tenant and c.ended < r.started}
        may = initial[r.tenant] | {str(c.created) for c in creates if c.tenant == r.tenant and c.started < r.ended}
        foreign_rows += len(r.seen - owned[r.tenant])
        assert must <= r.seen <= may
        assert all(name.startswith(r.tenant) for name in r.names)
    assert foreign_rows == 0

    # Ground truth past RLS: each workspace holds exactly the products it was answered about.
    async with admin_engine.connect() as connection:
        rows = await connection.execute(text("SELECT tenant_id::text, id::text FROM public.products"))
        in_db: dict[str, set[str]] = {}
        for tenant_id, product_id in rows:
            in_db.setdefault(tenant_id, set()).add(product_id)
        assert {k: in_db.get(k, set()) for k in owned} == owned

        # PgBouncer really multiplexed: at most POOL_SIZE server connections (real backends of the
        # app role on this database) carried thousands of transactions from many more clients.
        pids = [int(str(row["remote_pid"])) for row in final_servers if row["remote_pid"] != "0"]
        backends = await connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE pid = ANY(:pids) AND usename = :role AND datname = current_database()"
            ),
            {"pids": pids, "role": settings.app_role},
        )
        assert backends.scalar_one() == len(pids) >= 1

    transactions = int(stats_after["total_xact_count"] or 0) - int(stats_before["total_xact_count"] or 0)
    print(f"through PgBouncer {pgbouncer.version}: {requests} requests, {transactions} transactions, {observed}")
    assert observed.samples >= 10, observed
    assert transactions >= requests, (transactions, observed)
    assert observed.max_server_connections <= pgbouncer.pool_size, observed
    assert len(observed.server_pids | {str(p) for p in pids}) <= pgbouncer.pool_size, observed
    assert observed.max_client_connections > pgbouncer.pool_size, observed
    assert observed.max_clients_waiting >= 1, observed
    # ... and with the caches off, no prepared statement is left on any server connection.
    assert set(left_behind) >= {str(p) for p in pids}, left_behind
    assert sum(left_behind.values()) == 0, left_behind


async def test_statement_cache_on_breaks_through_pgbouncer_before_1_21(
    settings: Settings,
    pgbouncer: PgBouncer,
    make_tenant,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reason for db_statement_cache=False: with the caches on, requests fail through PgBouncer < 1.21.

    A statement prepared on one server connection is looked for on another (or its name is already
    taken there). Those requests fail; none may show another workspace's rows.
    """
    if pgbouncer.version >= (1, 21):
        pytest.skip(f"PgBouncer {pgbouncer.version} can track prepared statements; this shows < 1.21")
    tenants = [await make_tenant(f"cache{i}") for i in range(6)]
    owned: dict[str, set[str]] = {}
    async with serve(create_app(settings)) as client:  # set up the products directly
        for tenant in tenants:
            owned[str(tenant.id)] = {str((await add_product(client, tenant, "p"))["id"]) for _ in range(2)}

    caplog.set_level(logging.ERROR, logger="tenantry.errors")
    async with serve(create_app(through_pgbouncer(settings, pgbouncer, statement_cache=True))) as client:

        async def one(tenant: Tenant) -> tuple[str, int, set[str]]:
            response = await client.get("/v1/products?limit=100", headers=tenant.headers)
            seen = {str(p["id"]) for p in response.json()["data"]} if response.status_code == 200 else set()
            return str(tenant.id), response.status_code, seen

        results = await asyncio.gather(*(one(tenants[n % len(tenants)]) for n in range(300)))

    statuses = Counter(status for _, status, _ in results)
    print(f"statement cache on, through PgBouncer {pgbouncer.version}: statuses {dict(statuses)}")
    assert sum(n for status, n in statuses.items() if status != 200) >= 30, statuses
    assert all(status in (200, 500, 503) for status in statuses), statuses
    # ... and they fail for the reason the setting exists, not another one.
    errors = [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert errors, "the failed requests logged no error"
    assert all("prepared statement" in error for error in errors), {e[:200] for e in errors}
    for key, status, seen in results:
        if status == 200:
            assert seen == owned[key]
