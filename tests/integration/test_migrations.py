"""`tenantry db upgrade`: idempotent, policies as repeatable migrations, and the tenant session hook.

docs/04-security-model.md: every policy file whose checksum changed is re-applied, all of them after a
versioned migration ran, none when nothing changed; and the catalog is then exactly as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.db.migrate import render_policy
from tenantry.db.server import drop_database, ensure_database
from tenantry.settings import Settings
from tenantry.tenancy.context import TenantScope, current_scope
from tenantry.tenancy.session import TenantSession, tenant_session_factory
from tests.support import Tenant, make_settings, migrate

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _roles(settings: Settings) -> list[str]:
    return [settings.owner_role, settings.tenant_role, settings.platform_role, settings.app_role]


CATALOG: dict[str, str] = {
    "policies": (
        "SELECT schemaname, tablename, policyname, permissive, roles::text[], cmd, qual, with_check "
        "FROM pg_policies WHERE schemaname = 'public' ORDER BY tablename, policyname"
    ),
    "tables": (
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relowner::regrole::text, c.relacl::text "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v') ORDER BY c.relname"
    ),
    "grants": (
        "SELECT grantor, grantee, table_schema, table_name, privilege_type, is_grantable "
        "FROM information_schema.role_table_grants WHERE grantee = ANY(:roles) "
        "ORDER BY grantee, table_schema, table_name, privilege_type, grantor"
    ),
    "resolve_token": (
        "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig, p.proowner::regrole::text, "
        "p.proacl::text, p.provolatile, p.prosrc "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND p.proname = 'resolve_token'"
    ),
    "roles": (
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
        "rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = ANY(:roles) ORDER BY rolname"
    ),
    "role_members": (
        "SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = ANY(:roles) OR m.rolname = ANY(:roles) "
        "ORDER BY 1, 2"
    ),
    "schema_acl": "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'",
    "checksums": "SELECT name, checksum, applied_at FROM public.tenantry_policy_checksums ORDER BY name",
}


async def _catalog(engine: AsyncEngine, settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    snapshot = {}
    async with engine.connect() as connection:
        for name, query in CATALOG.items():
            params = {"roles": _roles(settings)} if ":roles" in query else {}
            snapshot[name] = [tuple(row) for row in await connection.execute(text(query), params)]
    return snapshot


def _policy_names() -> list[str]:
    return sorted(p.name for p in REPO_POLICIES.glob("*.sql"))


# --- idempotence on the migrated database -------------------------------------------------------


async def test_second_upgrade_changes_nothing(admin_engine: AsyncEngine, settings: Settings) -> None:
    before = await _catalog(admin_engine, settings)
    # The snapshot must describe the secured schema, or comparing it would prove nothing.
    assert ("public", "products", "tenant_isolation") in {row[:3] for row in before["policies"]}
    assert ("products", True, True) in {row[:3] for row in before["tables"]}
    assert any(row[1] == settings.tenant_role and row[3] == "products" for row in before["grants"])
    ((signature, secdef, config, *_),) = before["resolve_token"]
    assert signature == "resolve_token(bytea)"
    assert secdef is True
    assert config == ["search_path=pg_catalog, pg_temp"]
    assert len(before["roles"]) == 4
    assert [row[0] for row in before["checksums"]] == _policy_names()

    report = await migrate(settings)

    assert report.migrations_ran is False
    assert report.revision_before == report.revision_after
    assert report.revision_after is not None
    assert report.policies_applied == []
    assert await _catalog(admin_engine, settings) == before


# --- render_policy ------------------------------------------------------------------------------

CUSTOM_ROLES = {
    "owner_role": "acme_owner",
    "tenant_role": "acme_tenant",
    "platform_role": "acme_platform",
    "app_role": "acme_app",
}


def _custom_settings() -> Settings:
    return make_settings("postgresql://admin@db.example/acme", **CUSTOM_ROLES)


def test_render_policy_substitutes_quoted_role_names() -> None:
    source = (
        "GRANT SELECT ON t TO {{tenant_role}}, {{ platform_role }};\n"
        "CREATE POLICY p ON t TO {{owner_role}} USING (true);\n"
        "GRANT EXECUTE ON FUNCTION f() TO {{  app_role  }};"
    )
    rendered = render_policy(source, _custom_settings())
    assert rendered == (
        'GRANT SELECT ON t TO "acme_tenant", "acme_platform";\n'
        'CREATE POLICY p ON t TO "acme_owner" USING (true);\n'
        'GRANT EXECUTE ON FUNCTION f() TO "acme_app";'
    )


def test_render_policy_leaves_sql_without_placeholders_alone() -> None:
    source = "SELECT '{1,2}'::int[], '{\"a\": {\"b\": 1}}'::jsonb, '{{1,2},{3,4}}'::int[];"
    assert render_policy(source, _custom_settings()) == source


@pytest.mark.parametrize(
    "placeholder",
    ["{{nobody}}", "{{ tenant }}", "{{database_url}}", "{{token_pepper}}", "{{Tenant_Role}}", "{{tenant_role2}}"],
)
def test_render_policy_raises_on_an_unknown_placeholder(placeholder: str) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        render_policy(f"GRANT SELECT ON t TO {placeholder};", _custom_settings())


def test_every_policy_file_renders_completely() -> None:
    names = _policy_names()
    assert names
    for name in names:
        rendered = render_policy((REPO_POLICIES / name).read_text(encoding="utf-8"), _custom_settings())
        assert "{{" not in rendered, name
        assert "}}" not in rendered, name
        # Role names come from settings only (the tenantry_ functions of migration 0008 are not roles).
        for role in ("tenantry_owner", "tenantry_tenant", "tenantry_platform", "tenantry_app"):
            assert role not in rendered, name


# --- a fresh database ----------------------------------------------------------------------------


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """A new empty database on the same server, dropped afterwards."""
    url = make_url(database_url).set(database=f"tenantry_fresh_{uuid.uuid4().hex[:10]}")
    rendered = url.render_as_string(hide_password=False)
    await ensure_database(rendered)
    try:
        yield rendered
    finally:
        await drop_database(rendered)


async def test_fresh_database_gets_every_policy_once_then_only_changed_ones(fresh_database_url: str) -> None:
    settings = make_settings(fresh_database_url)

    first = await migrate(settings)
    assert first.revision_before is None
    assert first.migrations_ran is True
    assert first.policies_applied == _policy_names()

    second = await migrate(settings)
    assert second.migrations_ran is False
    assert second.revision_after == first.revision_after
    assert second.policies_applied == []

    engine = create_async_engine(settings.admin_url, poolclass=NullPool)
    try:
        expected = hashlib.sha256(
            render_policy((REPO_POLICIES / "products.sql").read_text(encoding="utf-8"), settings).encode()
        ).hexdigest()
        async with engine.begin() as connection:
            recorded = (
                await connection.execute(
                    text("SELECT checksum FROM public.tenantry_policy_checksums WHERE name = 'products.sql'")
                )
            ).scalar_one()
            assert recorded == expected
            await connection.execute(
                text("UPDATE public.tenantry_policy_checksums SET checksum = 'stale' WHERE name = 'products.sql'")
            )
        # A policy dropped by hand comes back because its file is re-applied.
        async with engine.begin() as connection:
            await connection.execute(text("DROP POLICY tenant_isolation ON public.products"))

        third = await migrate(settings)

        assert third.migrations_ran is False
        assert third.policies_applied == ["products.sql"]
        async with engine.connect() as connection:
            recorded = (
                await connection.execute(
                    text("SELECT checksum FROM public.tenantry_policy_checksums WHERE name = 'products.sql'")
                )
            ).scalar_one()
            restored = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_policies WHERE schemaname = 'public' "
                        "AND tablename = 'products' AND policyname = 'tenant_isolation'"
                    )
                )
            ).scalar_one()
        assert recorded == expected
        assert restored == 1

        fourth = await migrate(settings)
        assert fourth.policies_applied == []
    finally:
        await engine.dispose()


# --- the tenant session hook ----------------------------------------------------------------------


CONTEXT = text(
    "SELECT current_user, current_setting('app.tenant_id', true), current_setting('app.user_id', true), "
    "pg_backend_pid(), txid_current()"
)


async def test_tenant_session_hook_fires_on_every_transaction(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    factory = tenant_session_factory(app_engine, settings)
    seen = []
    reset = current_scope.set(TenantScope(tenant_a.id, tenant_a.workspace.owner_user_id))
    try:
        async with factory() as session:
            assert isinstance(session.sync_session, TenantSession)
            for _ in range(2):
                async with session.begin():
                    seen.append((await session.execute(CONTEXT)).one())
            # The scope is read when each transaction begins, not when the session was made.
            current_scope.set(TenantScope(tenant_b.id, tenant_b.workspace.owner_user_id))
            seen.append((await session.execute(CONTEXT)).one())  # autobegin
            await session.commit()
    finally:
        current_scope.reset(reset)

    assert len(seen) == 3
    assert len({row[4] for row in seen}) == 3  # three distinct transactions
    expected_users = [
        tenant_a.workspace.owner_user_id,
        tenant_a.workspace.owner_user_id,
        tenant_b.workspace.owner_user_id,
    ]
    for row, tenant, user_id in zip(seen, [tenant_a, tenant_a, tenant_b], expected_users, strict=True):
        role, tenant_setting, user_setting, _, _ = row
        assert role == settings.tenant_role
        assert tenant_setting == str(tenant.id)
        assert user_setting == str(user_id)


async def test_tenant_session_without_scope_runs_as_tenant_role_with_no_tenant(
    app_engine: AsyncEngine, settings: Settings
) -> None:
    factory = tenant_session_factory(app_engine, settings)
    assert current_scope.get() is None
    async with factory() as session:
        for _ in range(2):
            async with session.begin():
                role, tenant_setting, *_ = (await session.execute(CONTEXT)).one()
                assert role == settings.tenant_role
                assert tenant_setting == ""


async def test_upgrades_of_two_databases_on_one_server_may_run_at_once(fresh_database_url: str) -> None:
    """Roles are cluster-wide: two upgrades at once both update the same role rows. The loser of that
    race ("tuple concurrently updated") rolled back whole and is run again, so both succeed."""
    from tenantry.db.migrate import upgrade

    other = make_url(fresh_database_url).set(database=f"tenantry_fresh_{uuid.uuid4().hex[:10]}")
    other_url = other.render_as_string(hide_password=False)
    await ensure_database(other_url)
    try:
        first, second = make_settings(fresh_database_url), make_settings(other_url)
        for _ in range(3):  # each round re-applies the roles (and the app role's password) in both
            reports = await asyncio.gather(upgrade(first), upgrade(second))
            assert all(report.revision_after for report in reports)
    finally:
        await drop_database(other_url)
