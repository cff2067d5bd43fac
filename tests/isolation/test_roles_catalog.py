"""docs/security.md, contract rules 1 and 2, asserted from the live catalog of the migrated database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.settings import Settings

# pg_policies shows the deparsed expression; compare it without white space, which differs by version.
# No subquery: Citus refuses one in a policy (migrations/versions/0008_tenant_context.py).
TENANT_POLICY = "(tenant_id=tenantry_current_tenant())"


async def _tenant_tables(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"
            )
        )
        return [r[0] for r in rows]


async def test_serving_roles_are_not_privileged(admin_engine: AsyncEngine, settings: Settings) -> None:
    async with admin_engine.connect() as connection:
        for role in (settings.tenant_role, settings.app_role):
            row = (
                await connection.execute(
                    text("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = :r"),
                    {"r": role},
                )
            ).one()
            assert tuple(row) == (False, False, False, False), role


async def test_tenant_and_app_roles_own_nothing_and_create_nowhere(
    admin_engine: AsyncEngine, settings: Settings
) -> None:
    async with admin_engine.connect() as connection:
        for role in (settings.tenant_role, settings.app_role):
            owned = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = :r)"
                    ),
                    {"r": role},
                )
            ).scalar_one()
            assert owned == 0, role
            creatable = (
                await connection.execute(
                    text("SELECT array_agg(nspname) FROM pg_namespace WHERE has_schema_privilege(:r, oid, 'CREATE')"),
                    {"r": role},
                )
            ).scalar_one()
            assert creatable is None, (role, creatable)


async def test_app_role_inherits_nothing(admin_engine: AsyncEngine, settings: Settings) -> None:
    """On its own the login role can read no table: it must become the tenant role per transaction."""
    async with admin_engine.connect() as connection:
        inherit = (
            await connection.execute(
                text("SELECT rolinherit FROM pg_roles WHERE rolname = :r"), {"r": settings.app_role}
            )
        ).scalar_one()
        assert inherit is False
        readable = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r' AND has_table_privilege(:r, c.oid, 'SELECT')"
                ),
                {"r": settings.app_role},
            )
        ).scalar_one()
        assert readable == 0


async def test_every_tenant_table_is_forced_and_fully_policed(admin_engine: AsyncEngine, settings: Settings) -> None:
    tables = await _tenant_tables(admin_engine)
    assert {"products", "memberships", "personal_access_tokens"} <= set(tables)
    async with admin_engine.connect() as connection:
        for table in tables:
            enabled, forced = (
                await connection.execute(
                    text("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                    {"t": f"public.{table}"},
                )
            ).one()
            assert enabled, table
            assert forced, table
            policies = (
                await connection.execute(
                    text(
                        "SELECT cmd, qual, with_check FROM pg_policies "
                        "WHERE schemaname = 'public' AND tablename = :t AND :role = ANY(roles)"
                    ),
                    {"t": table, "role": settings.tenant_role},
                )
            ).all()
            assert len(policies) == 1, (table, policies)
            cmd, qual, with_check = policies[0]
            assert cmd == "ALL", table
            assert TENANT_POLICY in "".join(qual.split()), (table, qual)
            assert TENANT_POLICY in "".join(with_check.split()), (table, with_check)


async def test_tenant_table_keys_lead_with_tenant_id(admin_engine: AsyncEngine) -> None:
    tables = await _tenant_tables(admin_engine)
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname, i.indexrelid::regclass::text, a.attname "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
                "WHERE (i.indisunique OR i.indisprimary) AND c.relname = ANY(:tables)"
            ),
            {"tables": tables},
        )
        for table, index, first_column in rows:
            assert first_column == "tenant_id", (table, index)
        foreign_keys = await connection.execute(
            text(
                "SELECT conrelid::regclass::text, conname, confrelid::regclass::text, "
                "(SELECT array_agg(attname) FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY(conkey)) "
                "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(:tables)"
            ),
            {"tables": tables},
        )
        for table, name, referenced, columns in foreign_keys:
            if referenced in tables:
                assert "tenant_id" in columns, (table, name)
