"""The benchmark's databases: a server, two seeded databases, their tokens, and the no-RLS copy.

Two databases on one server, the same data per workspace and a different number of workspaces
(scenario d): `few` (e.g. 100 workspaces) and `many` (e.g. 10,000, with at least a million
products in all). They are seeded with `tenantry seed`'s Seeder, which skips workspaces that
already exist, so a second run over the same server reuses them; the owner tokens are kept in the
data folder (0600) because the database only holds their digests.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.auth.resolver import resolve_token
from tenantry.auth.tokens import token_digest
from tenantry.db.engine import create_engine
from tenantry.db.migrate import upgrade
from tenantry.db.server import embedded_server, ensure_database
from tenantry.settings import Settings, load_settings
from tenantry.tools.bench.raw_app import NORLS_SCHEMA, NORLS_TABLE
from tenantry.tools.seed import Progress, Seeder, SeedOptions
from tenantry.workspaces.bootstrap import ProvisioningService

SLUG_PREFIX = "bench"


class BenchWorkspace(msgspec.Struct, frozen=True):
    slug: str
    workspace_id: uuid.UUID
    token: str


@dataclass(frozen=True)
class Layout:
    """One seeded database: `workspaces` x `products` (per workspace)."""

    label: str
    workspaces: int
    products: int
    prefix: str = "tenantry_bench"  # scenario z names its own (bench/citus.py)

    @property
    def database(self) -> str:
        return f"{self.prefix}_{self.workspaces}x{self.products}"


@dataclass(frozen=True)
class Secrets:
    token_pepper: str
    app_password: str


def bench_secrets(data_dir: Path, environ: dict[str, str]) -> Secrets:
    """The environment's secrets if set (a server of your own), else ones generated once and kept."""
    if environ.get("TENANTRY_TOKEN_PEPPER") and environ.get("TENANTRY_APP_PASSWORD"):
        return Secrets(environ["TENANTRY_TOKEN_PEPPER"], environ["TENANTRY_APP_PASSWORD"])
    path = data_dir / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text(encoding="utf-8"))
    else:
        values = {"token_pepper": secrets.token_urlsafe(48), "app_password": secrets.token_urlsafe(24)}
        _write_private(path, json.dumps(values, indent=2))
    return Secrets(values["token_pepper"], values["app_password"])


def start_server(data_dir: Path, database_url: str | None) -> tuple[str, object | None]:
    """DATABASE_URL if given, else an embedded PostgreSQL kept in `data_dir/pgdata` (stopped at exit)."""
    if database_url:
        return database_url, None
    handle = embedded_server(data_dir / "pgdata")
    return str(handle.get_uri()), handle


def layout_settings(server_url: str, layout: Layout, keys: Secrets, **overrides: Any) -> Settings:
    url = make_url(server_url).set(database=layout.database).render_as_string(hide_password=False)
    env = {"DATABASE_URL": url, "TENANTRY_TOKEN_PEPPER": keys.token_pepper, "TENANTRY_APP_PASSWORD": keys.app_password}
    return load_settings(env, **overrides)


def admin_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(settings.admin_url, poolclass=NullPool)


async def prepare_layout(
    settings: Settings, layout: Layout, data_dir: Path, progress: Progress | None = None
) -> tuple[list[BenchWorkspace], int]:
    """Create, migrate and seed the layout's database (or reuse it).

    Returns every workspace with a working owner token, and how many workspaces this run created.
    """
    await ensure_database(settings.database_url)
    await upgrade(settings)
    engine = create_engine(settings.app_url, settings, pool_size=1)
    try:
        summary = await Seeder(engine, settings, progress).run(
            SeedOptions(layout.workspaces, layout.products, 0, SLUG_PREFIX)
        )
        token_file = data_dir / f"{layout.database}.tokens.json"
        known = _read_tokens(token_file)
        for created in summary.created:
            known[created.slug] = BenchWorkspace(created.slug, created.workspace_id, created.token)
        known = await _valid_tokens(engine, settings, known)
        provisioning = ProvisioningService(engine, settings)
        for slug in summary.skipped:
            if slug not in known:  # seeded by an earlier run whose token file is gone: a fresh token
                workspace_id = await provisioning.find_workspace(slug)
                assert workspace_id is not None
                membership = await provisioning.owner_membership(workspace_id)
                issued, _ = await provisioning.issue_token(workspace_id, membership, name="bench token")
                known[slug] = BenchWorkspace(slug, workspace_id, issued.token)
        _write_private(token_file, msgspec.json.encode(list(known.values())).decode())
    finally:
        await engine.dispose()
    slugs = [f"{SLUG_PREFIX}-{i}" for i in range(1, layout.workspaces + 1)]
    return [known[slug] for slug in slugs], len(summary.created)


async def _valid_tokens(
    engine: AsyncEngine, settings: Settings, known: dict[str, BenchWorkspace]
) -> dict[str, BenchWorkspace]:
    """Drop the saved tokens if one no longer resolves (expired, or another pepper): all get reissued."""
    if not known:
        return known
    sample = next(iter(known.values()))
    resolution = await resolve_token(engine, token_digest(sample.token, settings.token_pepper))
    return known if resolution.principal is not None else {}


def _read_tokens(path: Path) -> dict[str, BenchWorkspace]:
    if not path.exists():
        return {}
    return {w.slug: w for w in msgspec.json.decode(path.read_bytes(), type=list[BenchWorkspace])}


def _write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(content, encoding="utf-8")


async def ensure_norls_copy(settings: Settings) -> int:
    """`bench.products_norls`: products without RLS, for scenario b's baseline; returns its rows.

    Made by the privileged account (not the migration owner: the copy is no part of the schema),
    with the same columns, defaults, checks and indexes (LIKE ... INCLUDING ALL copies no policy
    and no RLS flag), filled from `products` and granted to the tenant role, which the raw handler
    switches to exactly as for the RLS table. Rebuilt when its row count differs from products'.
    """
    engine = admin_engine(settings)
    try:
        async with engine.begin() as connection:
            # An earlier layout kept the copy in public, where the migrations cannot manage it.
            await connection.execute(text("DROP TABLE IF EXISTS public.bench_products_norls"))
            await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {NORLS_SCHEMA}"))
            await connection.execute(text(f'GRANT USAGE ON SCHEMA {NORLS_SCHEMA} TO "{settings.tenant_role}"'))
            await connection.execute(
                text(f"CREATE TABLE IF NOT EXISTS {NORLS_TABLE} (LIKE public.products INCLUDING ALL)")
            )
            counts = await connection.execute(
                text(f"SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM {NORLS_TABLE})")
            )
            products, copied = counts.one()
            if products != copied:
                columns = (
                    await connection.execute(
                        text(
                            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                            "WHERE attrelid = 'public.products'::regclass AND attnum > 0 AND NOT attisdropped "
                            "AND attgenerated = ''"
                        )
                    )
                ).scalar_one()
                await connection.execute(text(f"TRUNCATE {NORLS_TABLE}"))
                await connection.execute(text(f"INSERT INTO {NORLS_TABLE} ({columns}) SELECT {columns} FROM products"))
            await connection.execute(text(f'GRANT SELECT ON {NORLS_TABLE} TO "{settings.tenant_role}"'))
            # Fresh statistics for both tables, so neither side of scenario b plans on stale numbers.
            await connection.execute(text(f"ANALYZE products, {NORLS_TABLE}"))
        return int(products)
    finally:
        await engine.dispose()


async def sample_product_ids(
    settings: Settings, workspace_ids: list[uuid.UUID], per_workspace: int
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """A few live product ids of each workspace, read past RLS by the privileged account."""
    engine = admin_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT tenant_id, id FROM (SELECT tenant_id, id, row_number() OVER "
                    "(PARTITION BY tenant_id ORDER BY id) AS n FROM products "
                    "WHERE tenant_id = ANY(:ids) AND deleted_at IS NULL) AS p WHERE n <= :per"
                ),
                {"ids": workspace_ids, "per": per_workspace},
            )
            found: dict[uuid.UUID, list[uuid.UUID]] = {}
            for tenant_id, product_id in rows:
                found.setdefault(tenant_id, []).append(product_id)
            return found
    finally:
        await engine.dispose()


async def server_version(settings: Settings) -> str:
    engine = admin_engine(settings)
    try:
        async with engine.connect() as connection:
            return str((await connection.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()


async def server_settings(settings: Settings, names: tuple[str, ...]) -> dict[str, str]:
    """The PostgreSQL settings the report states (nothing is tuned: these are the server's own)."""
    engine = admin_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                # current_setting() prints the value with its unit as people write it (64MB); setting
                # and unit side by side would make 8192 pages of 8kB read as "81928kB".
                text("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(:n)"),
                {"n": list(names)},
            )
            return {name: value for name, value in rows}
    finally:
        await engine.dispose()


async def flush_principal_caches(settings: Settings) -> None:
    """Make every API worker on this database drop its whole token cache (auth/cache.py).

    A payload that is not a workspace id makes the listener clear everything: the same path a
    real change takes, so the bench needs no hook in the app.
    """
    engine = admin_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT pg_notify('auth_changed', 'tenantry bench: flush')"))
    finally:
        await engine.dispose()


# The application_name of every pooled connection a measured server opens (db/engine.py, raw_app.py,
# raw_litestar.py); the token cache's listener has its own and is opened once, at startup.
SERVER_APPLICATION_NAMES = ("tenantry", "tenantry-bench-raw", "tenantry-bench-litestar")


async def server_backends(settings: Settings) -> set[tuple[int, str]]:
    """The servers' backends on this database now, as (pid, backend_start): a connection opened
    since an earlier call is one whose pair is new (a pid alone could be reused)."""
    engine = admin_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT pid, backend_start::text FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = ANY(:names)"
                ),
                {"names": list(SERVER_APPLICATION_NAMES)},
            )
            return {(int(pid), str(start)) for pid, start in rows}
    finally:
        await engine.dispose()
