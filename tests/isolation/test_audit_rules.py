"""`tenantry audit`: the migrated schema passes it (the CI gate), and every rule catches its breakage.

Each case breaks exactly one thing in a migrated database of this module's own, inside a
transaction, audits on that same connection, and rolls back: the audit reads the catalog the
transaction sees. The database gets its own role names, because roles are cluster-wide and other
test runs on a shared server use the default ones; they are dropped with the database. One case
per rule also goes through the real command (`tenantry audit --json`) on a committed copy.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from tenantry import cli
from tenantry.db.server import drop_database, ensure_database
from tenantry.settings import ENVIRONMENT, Settings, to_asyncpg_url
from tenantry.tools.catalog_audit import RULES, AuditReport, AuditRoles, audit_database
from tenantry.tools.catalog_audit.function_rules import DEFINER_ALLOWLIST
from tenantry.tools.catalog_audit.report import exit_code, render_json
from tests.support import make_settings, migrate

TENANT_VALUE = "public.tenantry_current_tenant()"
# The bare expression the function stands for, and the initPlan form Citus refuses.
BARE_VALUE = "nullif(current_setting('app.tenant_id', true), '')::uuid"
INITPLAN_VALUE = f"(SELECT {BARE_VALUE})"
SCOPED = f"tenant_id = {TENANT_VALUE}"
REPLACE_PRODUCTS_POLICY = "DROP POLICY tenant_isolation ON products"


@dataclass(frozen=True)
class Case:
    """One breakage: SQL run as the superuser, the rules it must trigger, and how to undo what
    outlives a database (role attributes and memberships are cluster-wide). `on_citus`: the rules
    it triggers too on a Citus cluster (a new table that nothing distributes, C1 or C3)."""

    id: str
    rules: frozenset[str]
    statements: tuple[str, ...]
    repair: tuple[str, ...] = field(default=())
    on_citus: frozenset[str] = field(default=frozenset())

    def expected(self, report: AuditReport) -> frozenset[str]:
        return self.rules | self.on_citus if report.checked.citus.cluster else self.rules


def case(rules: str, id: str, *statements: str, repair: tuple[str, ...] = (), on_citus: str = "") -> Case:
    return Case(id, frozenset(rules.split()), statements, repair, frozenset(on_citus.split()))


CASES = [
    case("T1", "rls-disabled", "ALTER TABLE products DISABLE ROW LEVEL SECURITY"),
    case("T2", "rls-not-forced", "ALTER TABLE products NO FORCE ROW LEVEL SECURITY"),
    case("T3", "no-tenant-policy", REPLACE_PRODUCTS_POLICY),
    case(
        "T3",
        "policy-without-with-check",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY tenant_isolation ON products FOR ALL TO {{tenant}} USING ({SCOPED})",
    ),
    case(
        "T3",
        "restrictive-policy-only",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY tenant_isolation ON products AS RESTRICTIVE FOR ALL TO {{tenant}} "
        f"USING ({SCOPED}) WITH CHECK ({SCOPED})",
    ),
    case("T3", "extra-permissive-policy", "CREATE POLICY peek ON products FOR SELECT TO {tenant} USING (true)"),
    case("T3", "permissive-policy-to-public", "CREATE POLICY live ON products FOR SELECT USING (deleted_at IS NULL)"),
    case(
        "T3",
        "policy-or-widens",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY tenant_isolation ON products FOR ALL TO {{tenant}} "
        f"USING ({SCOPED} OR deleted_at IS NULL) WITH CHECK ({SCOPED})",
    ),
    case(
        "T3",
        "policy-compares-another-column",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY tenant_isolation ON products FOR ALL TO {{tenant}} "
        f"USING (id = {TENANT_VALUE}) WITH CHECK ({SCOPED})",
    ),
    case(
        "T3",
        "per-command-policies-miss-delete",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY t_select ON products FOR SELECT TO {{tenant}} USING ({SCOPED})",
        f"CREATE POLICY t_insert ON products FOR INSERT TO {{tenant}} WITH CHECK ({SCOPED})",
        f"CREATE POLICY t_update ON products FOR UPDATE TO {{tenant}} USING ({SCOPED}) WITH CHECK ({SCOPED})",
    ),
    case(
        "T4",
        "nullable-tenant-id",
        "CREATE TABLE notes (tenant_id uuid, id uuid NOT NULL, body text, UNIQUE (tenant_id, id))",
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE notes FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON notes FOR ALL TO {{tenant}} USING ({SCOPED}) WITH CHECK ({SCOPED})",
        on_citus="C1",
    ),
    case(
        "P1",
        "initplan-subquery",
        REPLACE_PRODUCTS_POLICY,
        "CREATE POLICY tenant_isolation ON products FOR ALL TO {tenant} "
        f"USING (tenant_id = {INITPLAN_VALUE}) WITH CHECK (tenant_id = {INITPLAN_VALUE})",
    ),
    case(
        "P1 P2",
        "subquery-over-another-table",
        "CREATE POLICY active_workspace ON products AS RESTRICTIVE FOR ALL TO {tenant} "
        "USING (EXISTS (SELECT 1 FROM workspaces w WHERE w.id = tenant_id AND w.status = 'active'))",
    ),
    case(
        "P1 P2",
        "subquery-over-the-table-itself",
        "CREATE POLICY unique_sku ON products AS RESTRICTIVE FOR ALL TO {tenant} USING "
        "(NOT EXISTS (SELECT 1 FROM products p WHERE p.tenant_id = products.tenant_id AND p.id <> products.id))",
    ),
    case(
        "P1 P2",
        "subquery-over-a-catalog",
        "CREATE POLICY catalog ON products AS RESTRICTIVE FOR ALL TO {tenant} "
        "USING (EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname = 'products'))",
    ),
    case(
        "P2",
        "user-defined-function",
        "CREATE FUNCTION public.workspace_is_active(uuid) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT true'",
        "CREATE POLICY active_workspace ON products AS RESTRICTIVE FOR ALL TO {tenant} "
        "USING (public.workspace_is_active(tenant_id))",
    ),
    case("K1", "unique-index-without-tenant", "CREATE UNIQUE INDEX uq_products_sku ON products (sku)"),
    case(
        "K1",
        "partial-expression-unique-index",
        "CREATE UNIQUE INDEX uq_products_lower_sku ON products (lower(sku), tenant_id) WHERE deleted_at IS NULL",
    ),
    case("K1", "unique-constraint-tenant-second", "ALTER TABLE products ADD CONSTRAINT uq_sku UNIQUE (sku, tenant_id)"),
    case(
        "K1",
        "primary-key-tenant-second",
        "ALTER TABLE audit_events DROP CONSTRAINT pk_audit_events",
        "ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (id, tenant_id)",
    ),
    case(
        "K2",
        "foreign-key-pairs-tenant-with-id",
        "ALTER TABLE invitations ADD COLUMN product_id uuid",
        "ALTER TABLE invitations ADD CONSTRAINT fk_invitations_product FOREIGN KEY (tenant_id, product_id) "
        "REFERENCES products (id, tenant_id)",
        "CREATE INDEX ON invitations (tenant_id, product_id)",
    ),
    # The everyday mistake needs a tenant-less unique key to point at, so K1 fires with it.
    case(
        "K1 K2",
        "foreign-key-on-id-alone",
        "CREATE UNIQUE INDEX uq_products_id ON products (id)",
        "ALTER TABLE invitations ADD COLUMN product_id uuid REFERENCES products (id)",
        "CREATE INDEX ON invitations (product_id)",
    ),
    case("K3", "foreign-key-without-index", "DROP INDEX ix_memberships_user_id"),
    case(
        "K3",
        "partial-index-does-not-serve",
        "DROP INDEX ix_memberships_user_id",
        "CREATE INDEX ix_memberships_user_id ON memberships (user_id) WHERE is_active",
    ),
    case("R1", "tenant-superuser", "ALTER ROLE {tenant} SUPERUSER", repair=("ALTER ROLE {tenant} NOSUPERUSER",)),
    case(
        "R1",
        "platform-superuser-reached-by-app",
        "ALTER ROLE {platform} SUPERUSER",
        repair=("ALTER ROLE {platform} NOSUPERUSER",),
    ),
    case("R2", "tenant-bypassrls", "ALTER ROLE {tenant} BYPASSRLS", repair=("ALTER ROLE {tenant} NOBYPASSRLS",)),
    case("R3", "tenant-owns-a-table", "ALTER TABLE products OWNER TO {tenant}"),
    case(
        "R3",
        "app-owns-a-function",
        "CREATE FUNCTION public.helper() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER FUNCTION public.helper() OWNER TO {app}",
    ),
    case("R4", "tenant-creates-in-public", "GRANT CREATE ON SCHEMA public TO {tenant}"),
    case("R4", "public-creates-in-public", "GRANT CREATE ON SCHEMA public TO PUBLIC"),
    case("R4", "app-creates-schemas", "GRANT CREATE ON DATABASE {database} TO {app}"),
    case("R5", "tenant-can-become-owner", "GRANT {owner} TO {tenant}", repair=("REVOKE {owner} FROM {tenant}",)),
    # R6's breakage depends on the server version: see `_statements`.
    case("R6", "app-inherits", "-- R6", repair=("-- R6 repair",)),
    case("F1", "definer-without-search-path", "ALTER FUNCTION public.member_emails() RESET search_path"),
    case("F1", "definer-search-path-without-pg-temp", "ALTER FUNCTION public.member_emails() SET search_path = public"),
    case(
        "F2",
        "definer-not-allowlisted",
        "CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "SET search_path = pg_catalog, pg_temp AS 'SELECT 1'",
        "REVOKE ALL ON FUNCTION public.sneaky() FROM PUBLIC",
    ),
    case("F3", "definer-executable-by-public", "GRANT EXECUTE ON FUNCTION public.resolve_token(bytea) TO PUBLIC"),
    # The mixing of issue 10: set_config beside the context function's SET LOCAL.
    case(
        "F4",
        "set-config-setter",
        "CREATE FUNCTION public.as_tenant(p uuid) RETURNS void LANGUAGE sql "
        "AS $$ SELECT set_config('app.tenant_id', p::text, true) $$",
        "REVOKE ALL ON FUNCTION public.as_tenant(uuid) FROM PUBLIC",
    ),
    case(
        "F4",
        "set-local-in-dynamic-sql",
        "CREATE FUNCTION reporting_as(p uuid) RETURNS void LANGUAGE plpgsql "
        "AS $$ BEGIN EXECUTE format('SET LOCAL app.tenant_id = %L', p); END $$",
    ),
    case(
        "F4",
        "set-clause",
        "CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql "
        "SET app.tenant_id = '00000000-0000-0000-0000-000000000000' AS 'SELECT 1::bigint'",
    ),
    case(
        "F5",
        "context-function-executable-by-tenant",
        "GRANT EXECUTE ON FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) TO {tenant}",
    ),
    case(
        "F5",
        "context-function-executable-by-public",
        "GRANT EXECUTE ON FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) TO PUBLIC",
    ),
    case(
        "F2 F5",
        "context-function-definer",
        "ALTER FUNCTION public.tenantry_set_context(text, uuid, uuid, integer) SECURITY DEFINER",
    ),
    case(
        "F5",
        "context-function-overload",
        "CREATE FUNCTION public.tenantry_set_context(p_tenant uuid) RETURNS void LANGUAGE sql AS 'SELECT'",
        "REVOKE ALL ON FUNCTION public.tenantry_set_context(uuid) FROM PUBLIC",
    ),
    case("F5", "context-function-missing", "DROP FUNCTION public.tenantry_set_context(text, uuid, uuid, integer)"),
    # A second way of setting the tenant: a default every session of the role, or the database, starts with.
    case(
        "F6",
        "tenant-default-for-the-login-role",
        "ALTER ROLE {app} IN DATABASE {database} SET app.tenant_id = '00000000-0000-0000-0000-000000000001'",
    ),
    case(
        "F6",
        "tenant-default-for-the-database",
        "ALTER DATABASE {database} SET app.tenant_id = '00000000-0000-0000-0000-000000000001'",
    ),
    case("V1", "definer-view", "CREATE VIEW product_names AS SELECT tenant_id, id, name FROM products"),
    case(
        "V1",
        "definer-view-over-invoker-view",
        "CREATE VIEW live_products WITH (security_invoker = true) AS SELECT * FROM products WHERE deleted_at IS NULL",
        "CREATE VIEW live_product_names AS SELECT tenant_id, id, name FROM live_products",
    ),
    case(
        "V1",
        "definer-view-in-another-schema",
        "CREATE SCHEMA reporting",
        "CREATE VIEW reporting.p AS SELECT * FROM public.products",
    ),
    case(
        "V1",
        "materialized-view",
        "CREATE MATERIALIZED VIEW product_counts AS SELECT tenant_id, count(*) FROM products GROUP BY tenant_id",
    ),
    case(
        "G1",
        "global-table-references-tenant-table",
        "CREATE TABLE featured_products (id uuid PRIMARY KEY, product_tenant_id uuid NOT NULL, "
        "product_id uuid NOT NULL, FOREIGN KEY (product_tenant_id, product_id) REFERENCES products (tenant_id, id))",
        "CREATE INDEX ON featured_products (product_tenant_id, product_id)",
        on_citus="C3",
    ),
]

# Changes that keep the contract: the audit must stay quiet about them.
CLEAN_CASES = [
    case(
        "",
        "bare-tenant-expression",
        REPLACE_PRODUCTS_POLICY,
        "CREATE POLICY tenant_isolation ON products FOR ALL TO {tenant} "
        f"USING (tenant_id = {BARE_VALUE}) WITH CHECK (tenant_id = {BARE_VALUE})",
    ),
    case(
        "",
        "per-command-policies",
        REPLACE_PRODUCTS_POLICY,
        f"CREATE POLICY t_select ON products FOR SELECT TO {{tenant}} USING ({SCOPED})",
        f"CREATE POLICY t_insert ON products FOR INSERT TO {{tenant}} WITH CHECK ({SCOPED})",
        f"CREATE POLICY t_update ON products FOR UPDATE TO {{tenant}} USING ({SCOPED}) WITH CHECK ({SCOPED})",
        f"CREATE POLICY t_delete ON products FOR DELETE TO {{tenant}} USING ({SCOPED} AND deleted_at IS NOT NULL)",
    ),
    case(
        "",
        "extra-restrictive-tenant-scoped-policy",
        f"CREATE POLICY live_only ON products AS RESTRICTIVE FOR SELECT TO {{tenant}} USING ({SCOPED})",
    ),
    case("", "invoker-view", "CREATE VIEW product_names WITH (security_invoker = on) AS SELECT id, name FROM products"),
    case("", "definer-with-empty-search-path", "ALTER FUNCTION public.member_emails() SET search_path = ''"),
    # Reading the setting is not setting it.
    case(
        "",
        "function-reads-the-setting",
        "CREATE FUNCTION public.my_tenant() RETURNS text LANGUAGE sql STABLE "
        "AS $$ SELECT current_setting('app.tenant_id', true) $$",
    ),
    case(
        "",
        "composite-tenant-foreign-key-with-partial-index",
        "ALTER TABLE invitations ADD COLUMN product_id uuid",
        "ALTER TABLE invitations ADD FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)",
        "CREATE INDEX ON invitations (product_id, tenant_id) WHERE product_id IS NOT NULL",
    ),
    case(
        "",
        "global-table-referenced-by-tenant-table",
        "CREATE TABLE currencies (code text PRIMARY KEY)",
        "ALTER TABLE products ADD FOREIGN KEY (currency) REFERENCES currencies (code)",
        "CREATE INDEX ON products (currency)",
    ),
]


# On a Citus cluster only (C1-C4): how `tenantry db upgrade` distributes, broken one way at a time.
# `notes` is a tenant table that keeps every other rule (RLS forced, the tenant policy, a key led by
# tenant_id); only where Citus keeps it differs.
NOTES = (
    "CREATE TABLE notes (tenant_id uuid NOT NULL, id uuid NOT NULL, body text, PRIMARY KEY (tenant_id, id))",
    "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE notes FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY tenant_isolation ON notes FOR ALL TO {{tenant}} USING ({SCOPED}) WITH CHECK ({SCOPED})",
)
CURRENCIES = "CREATE TABLE currencies (code text PRIMARY KEY)"
CITUS_CASES = [
    case("C1", "tenant-table-left-on-the-coordinator", *NOTES),
    case("C1", "tenant-table-as-reference-table", *NOTES, "SELECT create_reference_table('notes')"),
    case("C1", "tenant-table-distributed-by-id", *NOTES, "SELECT create_distributed_table('notes', 'id')"),
    case(
        "C2",
        "tenant-table-in-its-own-colocation-group",
        *NOTES,
        "SELECT create_distributed_table('notes', 'tenant_id', colocate_with => 'none')",
    ),
    case("C3", "global-table-left-on-the-coordinator", CURRENCIES),
    case("C3", "global-table-distributed", CURRENCIES, "SELECT create_distributed_table('currencies', 'code')"),
    # The token directory copied to every node: each new token would be a write to every node.
    case(
        "C3",
        "token-directory-as-reference-table",
        "SELECT undistribute_table('token_directory')",
        "SELECT create_reference_table('token_directory')",
    ),
    case(
        "C4",
        "login-role-does-not-propagate-set-local",
        "ALTER ROLE {app} IN DATABASE {database} RESET citus.propagate_set_commands",
    ),
]
CITUS_RULES = frozenset(r.id for r in RULES if r.id.startswith("C"))


@dataclass(frozen=True)
class AuditDatabase:
    server_url: str
    settings: Settings
    server_version: int

    @property
    def roles(self) -> AuditRoles:
        return AuditRoles.from_settings(self.settings)

    def statements(self, sql: tuple[str, ...], database: str) -> list[str]:
        """Fill in this database's role names; R6 (inheritance) is spelled per server version."""
        s = self.settings
        if sql == ("-- R6",):
            sql = (
                ("GRANT {tenant} TO {app} WITH INHERIT TRUE",)
                if self.server_version >= 160000
                else ("ALTER ROLE {app} INHERIT",)
            )
        elif sql == ("-- R6 repair",):
            sql = (
                ("GRANT {tenant} TO {app} WITH INHERIT FALSE",)
                if self.server_version >= 160000
                else ("ALTER ROLE {app} NOINHERIT",)
            )
        names = {
            "tenant": s.tenant_role,
            "app": s.app_role,
            "owner": s.owner_role,
            "platform": s.platform_role,
            "database": database,
        }
        return [statement.format(**{k: f'"{v}"' for k, v in names.items()}) for statement in sql]


def _url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


async def _is_citus(database_url: str) -> bool:
    engine = create_async_engine(to_asyncpg_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
            return found.first() is not None
    finally:
        await engine.dispose()


async def _on_server(server_url: str, *statements: str) -> None:
    engine = create_async_engine(to_asyncpg_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def audit_db(server_url: str) -> Iterator[AuditDatabase]:
    """A migrated database with role names of its own; dropped, roles and all, at the end."""
    prefix = f"audit_{uuid.uuid4().hex[:8]}"
    url = _url(server_url, f"tenantry_{prefix}")
    settings = make_settings(
        url,
        owner_role=f"{prefix}_owner",
        tenant_role=f"{prefix}_tenant",
        platform_role=f"{prefix}_platform",
        app_role=f"{prefix}_app",
    )

    async def version() -> int:
        engine = create_async_engine(settings.admin_url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SHOW server_version_num"))).scalar_one())
        finally:
            await engine.dispose()

    asyncio.run(ensure_database(url))
    try:
        asyncio.run(migrate(settings))
        yield AuditDatabase(server_url, settings, asyncio.run(version()))
    finally:
        asyncio.run(drop_database(url))
        roles = (settings.app_role, settings.tenant_role, settings.platform_role, settings.owner_role)
        asyncio.run(_on_server(server_url, *(f'DROP ROLE IF EXISTS "{role}"' for role in roles)))


@pytest.fixture
async def superuser(audit_db: AuditDatabase) -> AsyncIterator[AsyncConnection]:
    """A connection to the module's database whose transaction is rolled back afterwards."""
    engine = create_async_engine(audit_db.settings.admin_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            yield connection
            await connection.rollback()
    finally:
        await engine.dispose()


async def _break_and_audit(connection: AsyncConnection, db: AuditDatabase, broken: Case) -> AuditReport:
    database = make_url(db.settings.database_url).database or ""
    for statement in db.statements(broken.statements, database):
        try:
            await connection.exec_driver_sql(statement)
        except DBAPIError as exc:
            # On Citus, a distributed table refuses some of these changes outright (a subquery in a
            # policy, a unique index or a key without the tenant column): that state cannot exist.
            if await _is_citus(db.settings.database_url):
                pytest.skip(f"Citus refuses this change itself: {str(exc.orig).splitlines()[0]}")
            raise
    return await audit_database(connection, db.roles)


def _describe(report: AuditReport) -> list[str]:
    return [f"{f.rule} {f.object}: {f.message}" for f in report.findings]


async def test_ci_gate_the_migrated_schema_passes_the_audit(admin_engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The CI gate: the schema the real migrations build keeps every rule of the audit."""
    async with admin_engine.connect() as connection:
        report = await audit_database(connection, AuditRoles.from_settings(settings))
    assert report.ok, _describe(report)
    assert report.findings == []
    assert {"public.products", "public.memberships", "public.personal_access_tokens"} <= set(
        report.checked.tenant_tables
    )
    assert "public.workspaces" in report.checked.global_tables
    assert "public.alembic_version" not in report.checked.global_tables
    assert report.checked.rules == [r.id for r in RULES]
    assert report.checked.definer_functions == len(DEFINER_ALLOWLIST)


async def test_the_module_database_is_clean_before_any_breakage(
    superuser: AsyncConnection, audit_db: AuditDatabase
) -> None:
    report = await audit_database(superuser, audit_db.roles)
    assert report.ok, _describe(report)


@pytest.mark.parametrize("broken", CASES, ids=[c.id for c in CASES])
async def test_audit_reports_exactly_the_broken_rule(
    superuser: AsyncConnection, audit_db: AuditDatabase, broken: Case
) -> None:
    report = await _break_and_audit(superuser, audit_db, broken)
    assert report.rule_ids == broken.expected(report), _describe(report)
    assert exit_code(report) == 1
    document = json.loads(render_json(report))
    assert document["ok"] is False
    assert {f["rule"] for f in document["findings"]} == broken.expected(report)
    for finding in document["findings"]:
        assert finding["message"]
        assert finding["fix"]


@pytest.mark.parametrize("broken", CITUS_CASES, ids=[c.id for c in CITUS_CASES])
async def test_on_citus_the_audit_reports_exactly_the_broken_distribution(
    superuser: AsyncConnection, audit_db: AuditDatabase, broken: Case
) -> None:
    """C1-C4 on a real cluster: each breakage, made in a transaction that is rolled back, is found."""
    if not await _is_citus(audit_db.settings.database_url):
        pytest.skip("C1-C4 judge a Citus cluster's distribution: this server is plain PostgreSQL")
    report = await _break_and_audit(superuser, audit_db, broken)
    assert report.checked.citus.cluster
    assert report.rule_ids == broken.rules, _describe(report)
    assert exit_code(report) == 1


async def test_the_audit_reports_where_citus_keeps_each_table(admin_engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """On a cluster: every tenant table distributed by tenant_id in one group, the global tables
    reference tables but the token directory (Citus local) and the login throttle, the bookkeeping
    on the coordinator. On plain PostgreSQL: no Citus, no table
    listed, and C1-C4 find nothing."""
    async with admin_engine.connect() as connection:
        report = await audit_database(connection, AuditRoles.from_settings(settings))
    citus = report.checked.citus
    assert not CITUS_RULES & report.rule_ids
    if not await _is_citus(settings.database_url):
        assert not citus.cluster
        assert citus.tables == []
        assert "not a Citus cluster" in citus.status
        return
    assert citus.cluster
    assert citus.workers >= 1
    assert citus.propagate_set_commands == "local"
    kinds = {table.table: table for table in citus.tables}
    tenant = [kinds[name] for name in report.checked.tenant_tables]
    assert {(t.kind, t.column) for t in tenant} == {("distributed", "tenant_id")}
    assert len({t.colocation_id for t in tenant}) == 1
    placed = {name.removeprefix("public."): kinds[name].kind for name in report.checked.global_tables}
    assert {name: kind for name, kind in placed.items() if kind != "reference"} == {
        "token_directory": "citus local",
        "auth_throttle": "local",
    }
    assert kinds["public.alembic_version"].kind == "local"
    assert kinds["public.tenantry_policy_checksums"].kind == "local"


@pytest.mark.parametrize("kept", CLEAN_CASES, ids=[c.id for c in CLEAN_CASES])
async def test_audit_accepts_changes_that_keep_the_contract(
    superuser: AsyncConnection, audit_db: AuditDatabase, kept: Case
) -> None:
    report = await _break_and_audit(superuser, audit_db, kept)
    assert report.ok, _describe(report)


async def test_allow_definer_admits_a_reviewed_function(superuser: AsyncConnection, audit_db: AuditDatabase) -> None:
    broken = next(c for c in CASES if c.id == "definer-not-allowlisted")
    await _break_and_audit(superuser, audit_db, broken)
    report = await audit_database(superuser, audit_db.roles, allowed_definers=["sneaky"])
    assert report.ok, _describe(report)


# -- the command: exit codes, --json, and one committed breakage per rule ------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def document(self) -> dict[str, object]:
        return dict(json.loads(self.out))


@pytest.fixture
def tenantry_audit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `tenantry audit <args>` with `environment` (in a thread: it runs its own event loop)."""

    async def invoke(*args: str, environment: dict[str, str]) -> Run:
        for variable in ENVIRONMENT:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["audit", *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return invoke


def _role_environment(settings: Settings) -> dict[str, str]:
    return {
        "TENANTRY_OWNER_ROLE": settings.owner_role,
        "TENANTRY_TENANT_ROLE": settings.tenant_role,
        "TENANTRY_PLATFORM_ROLE": settings.platform_role,
        "TENANTRY_APP_ROLE": settings.app_role,
    }


async def test_ci_gate_tenantry_audit_exits_0_on_the_migrated_schema(tenantry_audit, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    run = await tenantry_audit(environment={"DATABASE_URL": settings.database_url, **_role_environment(settings)})
    assert run.code == 0, run.out + run.err
    assert run.out.rstrip().endswith(": 0 findings")
    assert f"{len(RULES)} checks over " in run.out


async def test_json_output_has_a_stable_shape(tenantry_audit, audit_db: AuditDatabase) -> None:  # type: ignore[no-untyped-def]
    run = await tenantry_audit(
        "--json", environment={"DATABASE_URL": audit_db.settings.database_url, **_role_environment(audit_db.settings)}
    )
    assert run.code == 0, run.err
    document = run.document
    assert set(document) == {"ok", "checked", "findings"}
    assert document["ok"] is True
    assert document["findings"] == []
    checked = document["checked"]
    assert isinstance(checked, dict)
    assert set(checked) == {
        "database",
        "server_version",
        "schema",
        "roles",
        "rules",
        "tenant_tables",
        "global_tables",
        "policies",
        "foreign_keys",
        "definer_functions",
        "views",
        "citus",
    }
    assert checked["roles"] == {
        "tenant": audit_db.settings.tenant_role,
        "app": audit_db.settings.app_role,
        "owner": audit_db.settings.owner_role,
    }


async def test_the_app_login_role_can_run_the_audit(tenantry_audit, audit_db: AuditDatabase) -> None:  # type: ignore[no-untyped-def]
    """The recommended way: no privilege is needed, so run it as the app login role."""
    app_url = audit_db.settings.app_url.render_as_string(hide_password=False)
    run = await tenantry_audit("--database-url", app_url, environment=_role_environment(audit_db.settings))
    assert run.code == 0, run.out + run.err


ONE_CASE_PER_RULE = [next(c for c in CASES if c.rules == {r.id}) for r in RULES if r.id not in CITUS_RULES]


@pytest.mark.parametrize("broken", ONE_CASE_PER_RULE, ids=[f"{min(c.rules)}-{c.id}" for c in ONE_CASE_PER_RULE])
async def test_tenantry_audit_exits_1_and_names_the_rule(tenantry_audit, audit_db: AuditDatabase, broken: Case) -> None:  # type: ignore[no-untyped-def]
    """The breakage committed in a copy of the module's database, audited by the real command."""
    if await _is_citus(audit_db.settings.database_url):
        pytest.skip(
            "Citus: its maintenance daemon stays connected to the database, so CREATE DATABASE ... "
            "TEMPLATE cannot copy it; each rule is proven on plain PostgreSQL, the real schema on both"
        )
    template = make_url(audit_db.settings.database_url).database
    copy = f"{template}_{uuid.uuid4().hex[:6]}"
    url = _url(audit_db.server_url, copy)
    await _on_server(audit_db.server_url, f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
    try:
        await _on_server(url, *audit_db.statements(broken.statements, copy))
        run = await tenantry_audit("--json", "--database-url", url, environment=_role_environment(audit_db.settings))
    finally:
        await _on_server(audit_db.server_url, *audit_db.statements(broken.repair, copy))
        await drop_database(url)
    assert run.code == 1, run.out + run.err
    document = run.document
    assert document["ok"] is False
    assert {f["rule"] for f in document["findings"]} == broken.rules  # type: ignore[union-attr]


async def test_unreachable_server_exits_2_with_one_line(tenantry_audit) -> None:  # type: ignore[no-untyped-def]
    run = await tenantry_audit("--database-url", "postgresql://nobody@127.0.0.1:1/nothing", environment={})
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith("tenantry audit: cannot read the catalog: ")
    assert len(run.err.strip().splitlines()) == 1
    assert "Traceback" not in run.err


async def test_missing_role_exits_2(tenantry_audit, audit_db: AuditDatabase) -> None:  # type: ignore[no-untyped-def]
    environment = {**_role_environment(audit_db.settings), "TENANTRY_TENANT_ROLE": "no_such_tenant_role"}
    run = await tenantry_audit("--database-url", audit_db.settings.database_url, environment=environment)
    assert run.code == 2
    assert "no_such_tenant_role" in run.err
    assert len(run.err.strip().splitlines()) == 1


async def test_database_without_tenant_tables_exits_2(tenantry_audit, audit_db: AuditDatabase) -> None:  # type: ignore[no-untyped-def]
    run = await tenantry_audit(
        "--database-url", _url(audit_db.server_url, "postgres"), environment=_role_environment(audit_db.settings)
    )
    assert run.code == 2
    assert "has no tenant table" in run.err


async def test_no_database_url_exits_2(tenantry_audit) -> None:  # type: ignore[no-untyped-def]
    run = await tenantry_audit(environment={})
    assert run.code == 2
    assert "DATABASE_URL is not set" in run.err


async def test_unknown_option_is_a_usage_error(tenantry_audit) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        await tenantry_audit("--no-such-option", environment={})
    assert exited.value.code == 2
