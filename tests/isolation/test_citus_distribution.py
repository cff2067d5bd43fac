"""On a Citus coordinator: every tenant table is distributed by tenant_id in one colocation group,
each workspace's rows live on a worker, and one tenant's statements run on one shard (router).

Skipped, saying why, on plain PostgreSQL: these facts exist only on a cluster (.ci/run starts one;
docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import NullPool, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.auth.tokens import token_digest
from tenantry.catalog.models import Product
from tenantry.catalog.repository import BY_ID, INSERT, ProductRepository
from tenantry.catalog.schemas import ProductFilters
from tenantry.catalog.service import SORTABLE
from tenantry.db.citus import is_cluster, isolate_tenant
from tenantry.db.engine import create_engine
from tenantry.db.server import drop_database, ensure_database
from tenantry.orders.repository import OrderRepository
from tenantry.settings import Settings
from tenantry.tenancy.pagination import Ordering
from tenantry.workspaces.bootstrap import ProvisioningService
from tenantry.workspaces.tables import tenant_tables
from tests.support import (
    WORKSPACES,
    Client,
    Tenant,
    create_order,
    create_product,
    make_settings,
    migrate,
    new_tenant,
    plan_as_tenant,
    snapshot_workspace,
)


async def _on_citus(admin_engine: AsyncEngine) -> bool:
    async with admin_engine.connect() as connection:
        return bool(await connection.run_sync(is_cluster))


@pytest.fixture
async def citus(admin_engine: AsyncEngine) -> None:
    if not await _on_citus(admin_engine):
        pytest.skip("not a Citus coordinator with workers (plain PostgreSQL): nothing is distributed here")


async def test_every_tenant_table_is_distributed_by_tenant_id_and_colocated(
    citus: None, admin_engine: AsyncEngine
) -> None:
    async with admin_engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT logicalrelid::regclass::text AS name, partmethod::text AS partmethod, "
                    "column_to_column_name(logicalrelid, partkey) AS column, colocationid "
                    "FROM pg_dist_partition"
                )
            )
        ).all()
    by_name = {row.name: row for row in rows}
    names = [table.name for table in tenant_tables()]
    assert names
    for name in names:
        assert by_name[name].partmethod == "h", name
        assert by_name[name].column == "tenant_id", name
    assert len({by_name[name].colocationid for name in names}) == 1
    for name in ("workspaces", "users", "admin_tokens", "workspace_plans"):
        assert by_name[name].partmethod == "n", f"{name} is not a reference table"


async def test_each_workspace_rows_live_on_a_worker(
    citus: None, client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await create_product(client, tenant_a)
    await create_product(client, tenant_b)
    async with admin_engine.connect() as connection:
        for tenant in (tenant_a, tenant_b):
            placements = (
                await connection.execute(
                    text(
                        "SELECT s.nodeport, n.groupid FROM citus_shards AS s "
                        "JOIN pg_dist_node AS n ON n.nodename = s.nodename AND n.nodeport = s.nodeport "
                        "WHERE s.table_name = 'public.products'::regclass "
                        "AND s.shardid = get_shard_id_for_distribution_column('public.products', CAST(:t AS uuid))"
                    ),
                    {"t": str(tenant.id)},
                )
            ).all()
            assert len(placements) == 1
            assert placements[0].groupid != 0, "a workspace's shard is on the coordinator"
            # And its rows are there, read from the worker's shard through the coordinator.
            shard_rows = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM run_command_on_shards('public.products', "
                        "format('SELECT count(*) FROM %s WHERE tenant_id = %L', '%s', CAST(:t AS text))) "
                        "WHERE result::int > 0"
                    ),
                    {"t": str(tenant.id)},
                )
            ).scalar()
            assert shard_rows == 1


# The keys that were ON DELETE SET NULL (column) before migration 0009.
KEY_ACTIONS = (
    "fk_invitations_tenant_id_invited_by_member_id_memberships",
    "fk_invitations_tenant_id_accepted_member_id_memberships",
    "fk_order_status_history_tenant_id_changed_by_member_id_memberships",
    "fk_personal_access_tokens_tenant_id_created_by_token_id_personal_access_tokens",
    "fk_personal_access_tokens_tenant_id_replaced_by_id_personal_access_tokens",
)


def _runs_on_one_shard(plan: str) -> bool:
    return "Task Count: 1\n" in plan + "\n"


async def test_one_tenants_statements_run_on_one_shard(
    citus: None, client: Client, app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """list, get, create and update of products and orders, planned as the tenant role: each
    carries the tenant column, so Citus routes it to the workspace's shard (the policy alone would
    not prune: without `tenant_id = ...` a query goes to every shard)."""
    product = await create_product(client, tenant_a)
    await create_order(client, tenant_a, product_id=product["id"])
    products = ProductRepository(None, tenant_a.id)  # type: ignore[arg-type]
    orders = OrderRepository(None, tenant_a.id)  # type: ignore[arg-type]
    product_id = uuid.UUID(product["id"])
    statements = {
        "list products": products.select().order_by(Product.created_at, Product.id).limit(21),
        "get product": products.scoped(select(Product).where(Product.id == product_id)),
        "create product": insert(Product).values(
            tenant_id=tenant_a.id, name="n", price_cents=1, currency="EUR", sku=f"s-{uuid.uuid4().hex[:8]}"
        ),
        "update product": update(Product).where(products.tenant_filter(), Product.id == product_id).values(name="m"),
        "list orders": orders.filtered(status=None, product_id=None, customer_email=None).limit(21),
        # The statements the API itself runs for products, built once with the tenant as a parameter.
        "list products (API)": products.page_statement(
            ProductFilters(), Ordering.parse("created_at", SORTABLE, Product.id), after=False
        ).params(**products.page_parameters(ProductFilters()), page_limit=21),
        "get product (API)": BY_ID[True].params(tenant_id=tenant_a.id, id=product_id),
        "create product (API)": INSERT.values(  # its columns and RETURNING, with values
            tenant_id=tenant_a.id,
            id=uuid.uuid4(),
            name="n",
            price_cents=1,
            currency="EUR",
            sku=f"s-{uuid.uuid4().hex[:8]}",
            description="",
            category_id=None,
        ),
    }
    for name, statement in statements.items():
        plan = await plan_as_tenant(app_engine, settings, tenant_a.id, statement)
        assert _runs_on_one_shard(plan), f"{name} is not a router query:\n{plan}"
    # The control: without the tenant column, the same read fans out to every shard.
    unscoped = select(Product).where(Product.id == product_id)
    plan = await plan_as_tenant(app_engine, settings, tenant_a.id, unscoped)
    assert not _runs_on_one_shard(plan)


async def test_isolating_a_workspace_gives_it_shards_of_its_own_and_leaves_the_other_alone(
    citus: None, client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """`tenantry admin workspace isolate` (db/citus.isolate_tenant): A's shard in every tenant table
    holds A's hash value only; B's rows are unchanged; A still reads its own rows; a second run
    changes nothing."""
    mine = await create_product(client, tenant_a)
    await create_product(client, tenant_b)
    before_b = await snapshot_workspace(admin_engine, tenant_b.id)
    async with admin_engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        # block_writes: the test cluster does not allow citus as a logical output plugin.
        placements = await autocommit.run_sync(isolate_tenant, str(tenant_a.id), "block_writes")
        again = await autocommit.run_sync(isolate_tenant, str(tenant_a.id), "block_writes")
        alone = (
            await autocommit.execute(
                text(
                    "SELECT count(*) FROM pg_dist_shard WHERE shardid = ANY(CAST(:ids AS bigint[])) "
                    "AND shardminvalue = shardmaxvalue"
                ),
                {"ids": [p.shard_id for p in placements]},
            )
        ).scalar()
    assert {p.table for p in placements} == {table.name for table in tenant_tables()}
    assert alone == len(placements)
    assert again == placements
    assert await snapshot_workspace(admin_engine, tenant_b.id) == before_b
    response = await client.get(f"/v1/products/{mine['id']}", headers=tenant_a.headers)
    assert response.status_code == 200


async def test_no_key_between_tenant_tables_sets_null_on_delete(admin_engine: AsyncEngine) -> None:
    """On every backend (migration 0009): Citus refuses ON DELETE SET NULL / SET DEFAULT on a key
    that holds the distribution column, so none has it; the five that had it are plain keys whose
    AFTER DELETE triggers clear the reference, and they all exist (on Citus too, after distribution)."""
    async with admin_engine.connect() as connection:
        setting_null = (
            await connection.execute(
                text(
                    "SELECT conname FROM pg_constraint AS c JOIN pg_attribute AS a "
                    "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
                    "WHERE c.contype = 'f' AND a.attname = 'tenant_id' AND c.confdeltype IN ('n', 'd')"
                )
            )
        ).all()
        present = {
            row[0]
            for row in await connection.execute(
                text("SELECT conname FROM pg_constraint WHERE contype = 'f' AND conname = ANY(:names)"),
                {"names": [name[:63] for name in KEY_ACTIONS]},
            )
        }
    assert setting_null == []
    assert present == {name[:63] for name in KEY_ACTIONS}


async def test_a_second_upgrade_changes_nothing(citus: None, settings: Settings) -> None:
    report = await migrate(settings)
    assert not report.migrations_ran
    assert report.policies_applied == []
    assert report.distributed == []


async def test_the_login_role_propagates_set_local_to_the_workers(
    citus: None, admin_engine: AsyncEngine, settings: Settings
) -> None:
    """The tenant context (SET LOCAL) reaches the workers only with this setting (db/roles.py)."""
    async with admin_engine.connect() as connection:
        found = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM pg_db_role_setting AS s JOIN pg_roles AS r ON r.oid = s.setrole "
                    "JOIN pg_database AS d ON d.oid = s.setdatabase "
                    "WHERE r.rolname = :r AND d.datname = current_database() "
                    "AND 'citus.propagate_set_commands=local' = ANY(s.setconfig)"
                ),
                {"r": settings.app_role},
            )
        ).scalar_one()
    assert found == 1


async def test_a_status_change_of_a_workspace_commits_and_the_coordinator_notifies(
    citus: None,
    client: Client,
    admin_headers: dict[str, str],
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    """`workspaces` is a reference table: its write is a two-phase commit that PostgreSQL refuses
    to PREPARE on a worker that ran NOTIFY. Only the coordinator notifies (docs/scale-out.md)."""
    heard: list[str] = []
    async with admin_engine.connect() as connection:
        listener = (await connection.get_raw_connection()).driver_connection
        assert listener is not None

        def hear(*args: object) -> None:
            heard.append(str(args[3]))

        await listener.add_listener("auth_changed", hear)
        before = await snapshot_workspace(admin_engine, tenant_b.id)

        response = await client.post(f"{WORKSPACES}/{tenant_a.id}/suspend", headers=admin_headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "suspended"

        # The notification went out at the commit, before the answer; a round trip receives it.
        await listener.execute("SELECT 1")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0)
        await listener.remove_listener("auth_changed", hear)
    assert str(tenant_a.id) in heard
    assert str(tenant_b.id) not in heard
    assert await snapshot_workspace(admin_engine, tenant_b.id) == before


async def test_the_token_lookup_reads_the_directory_on_the_coordinator_then_one_shard(
    citus: None, admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """resolve_token() runs before the tenant is known. It reads the digest's workspace from the
    token directory (a Citus local table: on the coordinator, no worker), then the token with its
    tenant: one shard. The control: the same read by digest alone goes to every shard."""
    digest = token_digest(tenant_a.token, settings.token_pepper)
    async with admin_engine.connect() as connection:
        kinds = dict(
            (
                await connection.execute(
                    text(
                        "SELECT logicalrelid::regclass::text, partmethod::text || repmodel::text "
                        "FROM pg_dist_partition WHERE logicalrelid = 'public.token_directory'::regclass"
                    )
                )
            ).all()
        )
        assert kinds == {"token_directory": "ns"}, "the directory is not a Citus local table"
        coordinator = (await connection.execute(text("SELECT nodeport FROM pg_dist_node WHERE groupid = 0"))).scalar()

        async def plan(sql: str) -> str:
            # Literal values, as plan_as_tenant does: Citus prunes shards when it plans with them.
            rows = await connection.exec_driver_sql("EXPLAIN " + sql)
            return "\n".join(row[0] for row in rows)

        by_digest = f"token_digest = '\\x{digest.hex()}'::bytea"
        directory = await plan(f"SELECT workspace_id FROM public.token_directory WHERE {by_digest}")
        assert _runs_on_one_shard(directory), directory
        assert f"port={coordinator} " in directory, directory
        routed = await plan(
            f"SELECT * FROM public.personal_access_tokens WHERE tenant_id = '{tenant_a.id}'::uuid AND {by_digest}"
        )
        assert _runs_on_one_shard(routed), routed
        fanned = await plan(f"SELECT * FROM public.personal_access_tokens WHERE {by_digest}")
        assert not _runs_on_one_shard(fanned), fanned

        # The function itself, as it runs: every command it sends to a worker names the workspace's
        # shard of its table, and nothing else.
        raw = (await connection.get_raw_connection()).driver_connection
        messages: list[tuple[str, str]] = []  # (command, where it went)

        def listener(_connection: object, message: Any) -> None:
            messages.append((str(message.message), str(getattr(message, "detail", "") or "")))

        raw.add_log_listener(listener)
        try:
            await raw.execute("SET citus.log_remote_commands = on; SET client_min_messages = log")
            row = await raw.fetchrow("SELECT token_id, tenant_id FROM public.resolve_token($1)", digest)
        finally:
            await raw.execute("RESET citus.log_remote_commands; RESET client_min_messages")
            raw.remove_log_listener(listener)
        assert row is not None
        assert row["tenant_id"] == tenant_a.id
        shards = (
            await connection.execute(
                text(
                    "SELECT p.logicalrelid::regclass::text || '_' || "
                    "get_shard_id_for_distribution_column(p.logicalrelid, CAST(:t AS uuid)) "
                    "FROM pg_dist_partition AS p WHERE p.partmethod = 'h'"
                ),
                {"t": str(tenant_a.id)},
            )
        ).scalars()
        own = {f"public.{name}" for name in shards}
        tenant_tables_sharded = {name.rsplit("_", 1)[0] for name in own}
        log = "\n".join(f"{command} [{where}]" for command, where in messages)
        sharded: set[str] = set()
        for command, where in messages:
            for name in re.findall(r"public\.[a-z_]+_\d+", command):
                if name.rsplit("_", 1)[0] in tenant_tables_sharded:
                    sharded.add(name)
                else:  # the directory, and the workspace (a reference table): the coordinator's copy
                    assert f":{coordinator} " in where + " ", f"{name} was read on a worker:\n{log}"
        assert any(name.startswith("public.personal_access_tokens_") for name in sharded), log
        assert sharded <= own, f"resolve_token() touched other shards: {sorted(sharded - own)}\n{log}"


async def test_migration_0012_on_a_distributed_database_backfills_the_directory_on_the_coordinator(
    citus: None, database_url: str
) -> None:
    """An existing cluster upgrading to 0012: tokens already on the workers get their entries, and
    the table Citus auto-converted (its key to the reference table `workspaces`) is made an explicit
    Citus local table; `auth_throttle`, a reference table before, goes back to a plain table."""
    url = make_url(database_url).set(database=f"tenantry_fresh_{uuid.uuid4().hex[:10]}")
    fresh = url.render_as_string(hide_password=False)
    await ensure_database(fresh)
    try:
        settings = make_settings(fresh)
        await migrate(settings)
        engine = create_engine(settings.app_url, settings, pool_size=1)
        try:
            tenant = await new_tenant(ProvisioningService(engine, settings), "mig")
        finally:
            await engine.dispose()
        admin = create_async_engine(settings.admin_url, poolclass=NullPool)
        try:
            # The database as 0011 left it, the tokens already distributed.
            async with admin.begin() as connection:
                await connection.execute(text("DROP TABLE public.token_directory"))
                await connection.execute(text("SELECT create_reference_table('public.auth_throttle')"))
                await connection.execute(
                    text("UPDATE public.alembic_version SET version_num = '0011_citus_role_switch'")
                )
            report = await migrate(settings)
            assert report.migrations_ran
            assert "token_directory: coordinator-local table" in report.distributed
            assert "auth_throttle: coordinator-only table" in report.distributed
            async with admin.connect() as connection:
                entries = (
                    await connection.execute(text("SELECT token_digest, workspace_id FROM public.token_directory"))
                ).all()
                assert [(bytes(d), w) for d, w in entries] == [
                    (token_digest(tenant.token, settings.token_pepper), tenant.id)
                ]
                kinds = dict(
                    (
                        await connection.execute(
                            text(
                                "SELECT logicalrelid::regclass::text, "
                                "partmethod::text || repmodel::text || autoconverted::text FROM pg_dist_partition "
                                "WHERE logicalrelid::regclass::text IN ('token_directory', 'auth_throttle')"
                            )
                        )
                    ).all()
                )
                assert kinds == {"token_directory": "nsfalse"}
            assert (await migrate(settings)).distributed == []
        finally:
            await admin.dispose()
    finally:
        await drop_database(fresh)
