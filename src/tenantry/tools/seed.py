"""`tenantry seed`: realistic demo data, fast, through the same roles and policies as the API.

Each workspace is created with `ProvisioningService.create_workspace` (the owner, the first token
and the audit events, exactly as `tenantry admin workspace create`). Its lookups, products, orders
and status history are then bulk-inserted as the TENANT role with that workspace as the tenant:
one transaction per batch, opened by the tenant statement (tenancy/session.py), then one multi-row
`INSERT ... SELECT FROM unnest(arrays)` per table. The rows go through the very RLS policies that
guard requests (a wrong tenant_id would be refused by WITH CHECK).

COPY is not used: COPY FROM does not support row-level security, so PostgreSQL refuses it for a
role that is subject to RLS ("COPY FROM not supported with row-level security"), and the tenant
role always is. Array inserts are within a small factor of COPY and keep the policies in force.

Workspaces whose slug (`<prefix>-<i>`) already exists are skipped, data and all: re-running the
same command adds what is missing and never touches an existing workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenantry.core.errors import DomainError
from tenantry.core.ids import uuid7
from tenantry.db.connectivity import database_failure
from tenantry.db.engine import create_engine
from tenantry.settings import Settings, load_settings
from tenantry.tenancy.session import set_transaction_context
from tenantry.workspaces.bootstrap import ProvisioningService

# Bulk batches run longer than a request: their own transaction-local statement timeout.
BATCH_STATEMENT_TIMEOUT_MS = 120_000

CATEGORIES = (
    ("office", "Office", "#1F77B4"),
    ("kitchen", "Kitchen", "#FF7F0E"),
    ("garden", "Garden", "#2CA02C"),
    ("electronics", "Electronics", "#D62728"),
    ("outdoor", "Outdoor", "#9467BD"),
    ("home", "Home", "#8C564B"),
)
ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Ergonomic", "Essential", "Handmade", "Heavy-Duty", "Lightweight",
    "Modern", "Portable", "Premium", "Recycled", "Rustic", "Sleek", "Smart", "Vintage",
)  # fmt: skip
MATERIALS = (
    "Bamboo", "Brass", "Ceramic", "Copper", "Cotton", "Glass", "Granite", "Leather",
    "Linen", "Oak", "Steel", "Walnut", "Wool", "Aluminium", "Cork", "Marble",
)  # fmt: skip
NOUNS = {
    "office": ("Desk Lamp", "Notebook", "Pen Holder", "Monitor Stand", "Desk Organizer", "Stapler"),
    "kitchen": ("Cutting Board", "Teapot", "Mixing Bowl", "Chef Knife", "Coffee Grinder", "Spice Rack"),
    "garden": ("Planter", "Watering Can", "Pruning Shears", "Bird Feeder", "Garden Hose", "Trowel"),
    "electronics": ("Headphones", "Charger", "Bluetooth Speaker", "USB Hub", "Keyboard", "Webcam"),
    "outdoor": ("Backpack", "Water Bottle", "Camping Chair", "Lantern", "Hammock", "Cooler"),
    "home": ("Throw Blanket", "Candle", "Wall Clock", "Picture Frame", "Cushion", "Vase"),
}
FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ben", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kai", "Lena", "Marta", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksson", "Fischer", "Garcia", "Hughes", "Ivanova", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber",
)  # fmt: skip
# Final status -> the path through the status machine (created -> processing -> paid -> refunded,
# created or processing -> cancelled), with a weight for how common it is.
STATUS_PATHS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("created",), 15),
    (("created", "processing"), 15),
    (("created", "processing", "paid"), 45),
    (("created", "processing", "paid", "refunded"), 8),
    (("created", "cancelled"), 10),
    (("created", "processing", "cancelled"), 7),
)

INSERT_LOOKUPS = text(
    "INSERT INTO lookups (tenant_id, id, kind, code, name, description, color, position) "
    "SELECT CAST(:tenant_id AS uuid), * FROM unnest("
    "CAST(:id AS uuid[]), CAST(:kind AS text[]), CAST(:code AS text[]), CAST(:name AS text[]), "
    "CAST(:description AS text[]), CAST(:color AS text[]), CAST(:position AS integer[]))"
)
INSERT_PRODUCTS = text(
    "INSERT INTO products (tenant_id, id, name, description, price_cents, currency, sku, category_id) "
    "SELECT CAST(:tenant_id AS uuid), * FROM unnest("
    "CAST(:id AS uuid[]), CAST(:name AS text[]), CAST(:description AS text[]), CAST(:price_cents AS bigint[]), "
    "CAST(:currency AS text[]), CAST(:sku AS text[]), CAST(:category_id AS uuid[]))"
)
INSERT_ORDERS = text(
    "INSERT INTO orders (tenant_id, id, product_id, customer_email, customer_name, quantity, amount_cents, "
    "currency, status, created_at, updated_at) "
    "SELECT CAST(:tenant_id AS uuid), * FROM unnest("
    "CAST(:id AS uuid[]), CAST(:product_id AS uuid[]), CAST(:customer_email AS text[]), "
    "CAST(:customer_name AS text[]), CAST(:quantity AS integer[]), CAST(:amount_cents AS bigint[]), "
    "CAST(:currency AS text[]), CAST(:status AS text[]), CAST(:created_at AS timestamptz[]), "
    "CAST(:updated_at AS timestamptz[]))"
)
INSERT_HISTORY = text(
    "INSERT INTO order_status_history (tenant_id, id, order_id, from_status, to_status, changed_at, "
    "changed_by_member_id) "
    "SELECT CAST(:tenant_id AS uuid), u.id, u.order_id, u.from_status, u.to_status, u.changed_at, "
    "CAST(:member_id AS uuid) FROM unnest("
    "CAST(:id AS uuid[]), CAST(:order_id AS uuid[]), CAST(:from_status AS text[]), CAST(:to_status AS text[]), "
    "CAST(:changed_at AS timestamptz[])) AS u(id, order_id, from_status, to_status, changed_at)"
)

# On Citus an INSERT ... SELECT whose rows come from anywhere but a colocated distributed table is
# pulled to the coordinator and written to the shards with COPY, which row-level security refuses
# ("COPY FROM not supported with row-level security"). There the batches go as multi-row
# INSERT ... VALUES, which Citus routes to the workspace's shard: the columns of each table, with
# their types, in the order the statements above take them.
VALUES_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "lookups": (
        ("id", "uuid"), ("kind", "text"), ("code", "text"), ("name", "text"), ("description", "text"),
        ("color", "text"), ("position", "integer"),
    ),
    "products": (
        ("id", "uuid"), ("name", "text"), ("description", "text"), ("price_cents", "bigint"), ("currency", "text"),
        ("sku", "text"), ("category_id", "uuid"),
    ),
    "orders": (
        ("id", "uuid"), ("product_id", "uuid"), ("customer_email", "text"), ("customer_name", "text"),
        ("quantity", "integer"), ("amount_cents", "bigint"), ("currency", "text"), ("status", "text"),
        ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
    ),
    "order_status_history": (
        ("id", "uuid"), ("order_id", "uuid"), ("from_status", "text"), ("to_status", "text"),
        ("changed_at", "timestamptz"),
    ),
}  # fmt: skip
# The same value on every row of a batch: column -> (parameter of the unnest statement, type).
VALUES_CONSTANTS: dict[str, dict[str, tuple[str, str]]] = {
    "order_status_history": {"tenant_id": ("tenant_id", "uuid"), "changed_by_member_id": ("member_id", "uuid")},
}
UNNEST_STATEMENTS = {
    "lookups": INSERT_LOOKUPS,
    "products": INSERT_PRODUCTS,
    "orders": INSERT_ORDERS,
    "order_status_history": INSERT_HISTORY,
}
# Bind parameters per statement stay under PostgreSQL's limit of 65,535 (asyncpg: 32,767).
MAX_PARAMETERS = 30_000


def values_inserts(
    table: str, rows: Sequence[dict[str, Any]], constants: dict[str, Any]
) -> list[tuple[Any, dict[str, Any]]]:
    """The batch as multi-row INSERT ... VALUES statements (Citus), each under MAX_PARAMETERS."""
    columns = VALUES_COLUMNS[table]
    fixed = VALUES_CONSTANTS.get(table, {"tenant_id": ("tenant_id", "uuid")})
    names = [*fixed, *(name for name, _ in columns)]
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    statements = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        parameters = {f"k_{name}": constants[parameter] for name, (parameter, _) in fixed.items()}
        fixed_sql = [f"CAST(:k_{name} AS {type_})" for name, (_, type_) in fixed.items()]
        tuples = []
        for number, row in enumerate(chunk):
            cells = list(fixed_sql)
            for name, type_ in columns:
                parameters[f"r{number}_{name}"] = row[name]
                cells.append(f"CAST(:r{number}_{name} AS {type_})")
            tuples.append(f"({', '.join(cells)})")
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(tuples)}"
        statements.append((text(sql), parameters))
    return statements


@dataclass(frozen=True)
class SeedOptions:
    workspaces: int
    products: int
    orders: int
    prefix: str = "seed"
    batch: int = 1000


@dataclass
class SeededWorkspace:
    slug: str
    workspace_id: uuid.UUID
    token: str
    products: int
    orders: int


@dataclass
class SeedSummary:
    created: list[SeededWorkspace] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def products(self) -> int:
        return sum(w.products for w in self.created)

    @property
    def orders(self) -> int:
        return sum(w.orders for w in self.created)


class Progress(Protocol):
    def start(self, total_rows: int) -> None: ...
    def workspace(self, slug: str, skipped: bool) -> None: ...
    def advance(self, rows: int) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, total_rows: int) -> None:
        pass

    def workspace(self, slug: str, skipped: bool) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainProgress:
    """For logs and pipes: one line per workspace and about every 10% of the rows."""

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self.write = write
        self.total = self.done = self.next_report = 0
        self.started = time.perf_counter()

    def start(self, total_rows: int) -> None:
        self.total, self.next_report = total_rows, max(1, total_rows // 10)
        self.started = time.perf_counter()

    def workspace(self, slug: str, skipped: bool) -> None:
        self.write(f"{slug}: exists, skipped" if skipped else f"{slug}: seeding")

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.done >= self.next_report or self.done == self.total:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.write(f"  {self.done}/{self.total} rows ({rate:,.0f} rows/s)")
            while self.next_report <= self.done:
                self.next_report += max(1, self.total // 10)

    def stop(self) -> None:
        pass


class RichProgress:
    """A rich progress bar with rows per second, for a terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        )
        self.task: Any = None

    def start(self, total_rows: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("seeding", total=total_rows, rate="")

    def workspace(self, slug: str, skipped: bool) -> None:
        if skipped:
            self.progress.console.print(f"{slug}: exists, skipped")
        self.progress.update(self.task, description=slug)

    def advance(self, rows: int) -> None:
        self.progress.advance(self.task, rows)
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:,.0f} rows/s" if speed else "")

    def stop(self) -> None:
        self.progress.stop()


def _columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def _make_categories() -> list[dict[str, Any]]:
    return [
        {
            "id": uuid7(),
            "kind": "product_category",
            "code": code,
            "name": name,
            "description": f"{name} products",
            "color": color,
            "position": position,
        }
        for position, (code, name, color) in enumerate(CATEGORIES)
    ]


def _make_products(rng: random.Random, count: int, categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    products = []
    for n in range(count):
        category = categories[n % len(categories)]
        noun = rng.choice(NOUNS[category["code"]])
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {noun}"
        products.append(
            {
                "id": uuid7(),
                "name": name,
                "description": f"{name}, from our {category['name'].lower()} range.",
                # Prices like 4.99, 19.50, 129.00: whole units plus a retail ending.
                "price_cents": rng.randint(1, 399) * 100 + rng.choice((0, 50, 95, 99)),
                "currency": "EUR" if rng.random() < 0.7 else "USD",
                # Unique per workspace by construction: the category code and the running number.
                "sku": f"{category['code'][:3].upper()}-{n + 1:07d}",
                "category_id": category["id"],
            }
        )
    return products


def _make_orders(
    rng: random.Random, count: int, products: list[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    paths = [path for path, _ in STATUS_PATHS]
    weights = [weight for _, weight in STATUS_PATHS]
    orders, history = [], []
    for _ in range(count):
        product = rng.choice(products)
        quantity = rng.choices((1, 2, 3, 4, 5, 10), weights=(50, 20, 10, 8, 7, 5))[0]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        path = rng.choices(paths, weights=weights)[0]
        created_at = now - timedelta(seconds=rng.randint(3600, 90 * 86400))
        changed_at = created_at
        order_id = uuid7()
        previous = None
        for status in path:
            history.append(
                {
                    "id": uuid7(),
                    "order_id": order_id,
                    "from_status": previous,
                    "to_status": status,
                    "changed_at": changed_at,
                }
            )
            previous = status
            changed_at += timedelta(minutes=rng.randint(5, 3 * 1440))
        orders.append(
            {
                "id": order_id,
                "product_id": product["id"],
                "customer_email": f"{first}.{last}{rng.randint(1, 999)}@example.com".lower(),
                "customer_name": f"{first} {last}",
                "quantity": quantity,
                # Fixed from the product's price at order time, as the API does.
                "amount_cents": product["price_cents"] * quantity,
                "currency": product["currency"],
                "status": path[-1],
                "created_at": created_at,
                "updated_at": history[-1]["changed_at"],
            }
        )
    return orders, history


class Seeder:
    def __init__(self, engine: AsyncEngine, settings: Settings, progress: Progress | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.provisioning = ProvisioningService(engine, settings)
        self.progress = progress or NoProgress()
        self.citus: bool | None = None  # whether the database is on Citus, found on the first insert

    async def _as_tenant(self, connection: AsyncConnection, workspace_id: uuid.UUID) -> None:
        # The foreign-key checks run a query planned once per connection and then cached. Planned
        # while a table is still (nearly) empty and without statistics, it may look the key up
        # through any index led by tenant_id (ix_orders_tenant_id_customer_email_lower was seen),
        # scanning the whole workspace per row: quadratic, 20,000 orders took minutes. Dropping
        # the cached plans before each batch has the check re-planned on the table as it now is,
        # which picks the primary key.
        await connection.execute(text("DISCARD PLANS"))
        await set_transaction_context(
            connection,
            role=self.settings.tenant_role,
            tenant_id=workspace_id,
            statement_timeout_ms=BATCH_STATEMENT_TIMEOUT_MS,
        )

    async def _write(
        self, connection: AsyncConnection, table: str, rows: Sequence[dict[str, Any]], **constants: Any
    ) -> None:
        """Insert `rows` into `table` in the connection's transaction: one unnest statement on
        PostgreSQL, multi-row VALUES on Citus (see VALUES_COLUMNS)."""
        if self.citus is None:
            found = await connection.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"))
            self.citus = bool(found.scalar())
        if self.citus:
            for statement, parameters in values_inserts(table, rows, constants):
                await connection.execute(statement, parameters)
            return
        names = [name for name, _ in VALUES_COLUMNS[table]]
        await connection.execute(UNNEST_STATEMENTS[table], {**constants, **_columns(rows, names)})

    async def _insert(self, workspace_id: uuid.UUID, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction: the tenant context, then the rows."""
        async with self.engine.begin() as connection:
            await self._as_tenant(connection, workspace_id)
            await self._write(connection, table, rows, tenant_id=workspace_id)

    async def run(self, options: SeedOptions) -> SeedSummary:
        if options.workspaces < 1 or options.products < 1 or options.orders < 0 or options.batch < 1:
            raise ValueError("--workspaces and --products must be at least 1, --orders at least 0, --batch at least 1")
        started = time.perf_counter()
        summary = SeedSummary()
        slugs = [f"{options.prefix}-{i}" for i in range(1, options.workspaces + 1)]
        missing = [slug for slug in slugs if await self.provisioning.find_workspace(slug) is None]
        self.progress.start(len(missing) * (options.products + options.orders))
        try:
            for slug in slugs:
                if slug not in missing:
                    summary.skipped.append(slug)
                    self.progress.workspace(slug, skipped=True)
                    continue
                self.progress.workspace(slug, skipped=False)
                summary.created.append(await self._seed_workspace(slug, options))
        finally:
            self.progress.stop()
        summary.seconds = time.perf_counter() - started
        return summary

    async def _seed_workspace(self, slug: str, options: SeedOptions) -> SeededWorkspace:
        created = await self.provisioning.create_workspace(
            slug=slug, name=f"Seed workspace {slug}", owner_email=f"owner@{slug}.example.com"
        )
        workspace_id = created.workspace_id
        rng = random.Random(slug)  # noqa: S311 -- demo data, not secrets: the same slug gets the same data
        categories = _make_categories()
        await self._insert(workspace_id, "lookups", categories)
        products = _make_products(rng, options.products, categories)
        for start in range(0, len(products), options.batch):
            chunk = products[start : start + options.batch]
            await self._insert(workspace_id, "products", chunk)
            self.progress.advance(len(chunk))
        now = datetime.now(UTC)
        for start in range(0, options.orders, options.batch):
            size = min(options.batch, options.orders - start)
            orders, history = _make_orders(rng, size, products, now)
            # Orders and their history in one transaction: an order never exists without its history.
            async with self.engine.begin() as connection:
                await self._as_tenant(connection, workspace_id)
                await self._write(connection, "orders", orders, tenant_id=workspace_id)
                await self._write(
                    connection,
                    "order_status_history",
                    history,
                    tenant_id=workspace_id,
                    member_id=created.owner_membership_id,
                )
            self.progress.advance(size)
        return SeededWorkspace(slug, workspace_id, created.token, options.products, options.orders)


async def seed(
    settings: Settings, options: SeedOptions, progress: Progress | None = None, engine: AsyncEngine | None = None
) -> SeedSummary:
    """Seed through `engine`, or through a new engine on the app login role (as the API connects)."""
    own = engine is None
    engine = engine or create_engine(settings.app_url, settings, pool_size=1)
    try:
        return await Seeder(engine, settings, progress).run(options)
    finally:
        if own:
            await engine.dispose()


def write_tokens(path: Path, workspaces: Sequence[SeededWorkspace]) -> None:
    """`<slug> <token>` per line, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("".join(f"{w.slug} {w.token}\n" for w in workspaces), encoding="utf-8")


def _fail(message: str) -> int:
    print(f"tenantry: {message}", file=sys.stderr)
    return 2


def _cmd_seed(args: argparse.Namespace) -> int:
    if args.data_dir:
        from tenantry.tools.devserver import dev_settings

        # The `tenantry dev` folder: its secrets, and its embedded server (reused while it runs).
        settings = dev_settings(Path(args.data_dir).resolve())
    else:
        settings = load_settings()  # needs the pepper (tokens) and the app password, like the API
    options = SeedOptions(args.workspaces, args.products, args.orders, args.prefix, args.batch)
    progress: Progress = RichProgress() if sys.stdout.isatty() else PlainProgress()
    try:
        summary = asyncio.run(seed(settings, options, progress))
    except DomainError as exc:  # e.g. a prefix that makes an invalid slug
        return _fail(f"{exc.detail} {exc.extra.get('errors') or ''}".strip())
    except (ValueError, msgspec.ValidationError) as exc:
        return _fail(str(exc))
    except (DBAPIError, OSError) as exc:
        return _fail(database_failure(exc, settings.app_url))
    rate = (summary.products + summary.orders) / max(summary.seconds, 1e-9)
    print(
        f"seeded {len(summary.created)} workspaces ({len(summary.skipped)} skipped: already there), "
        f"{summary.products} products, {summary.orders} orders in {summary.seconds:.1f} s ({rate:,.0f} rows/s)"
    )
    if summary.created:
        first = summary.created[0]
        print(f"owner token of {first.slug}: {first.token}")
        if args.tokens_out:
            write_tokens(Path(args.tokens_out), summary.created)
            print(f"owner tokens of all {len(summary.created)} new workspaces written to {args.tokens_out}")
        elif len(summary.created) > 1:
            print("the other workspaces' owner tokens are not shown: pass --tokens-out PATH to save them all")
    return 0


def add_seed_command(commands: Any) -> None:
    seed_parser = commands.add_parser("seed", help="create demo workspaces with products and orders (bulk inserts)")
    seed_parser.add_argument("--workspaces", type=int, required=True, help="workspaces to create (<prefix>-1 ...)")
    seed_parser.add_argument("--products", type=int, required=True, help="products per workspace")
    seed_parser.add_argument("--orders", type=int, required=True, help="orders per workspace")
    seed_parser.add_argument("--prefix", default="seed", help="workspace slug prefix (default: seed)")
    seed_parser.add_argument("--batch", type=int, default=1000, help="rows per insert transaction (default: 1000)")
    seed_parser.add_argument("--tokens-out", help="write '<slug> <token>' for every new workspace to this file (0600)")
    seed_parser.add_argument(
        "--data-dir", help="seed the database of `tenantry dev --data-dir DIR` (its secrets and embedded server)"
    )
    seed_parser.set_defaults(func=_cmd_seed)
