"""The one tenant mechanism (migrations/versions/0008_tenant_context.py), checked on the live database.

`tenantry_set_context()` is the only way a transaction gets its role and tenant. Once switched to
the tenant or platform role, a transaction cannot call it to switch tenants, and it refuses to run
as any role but the session's login role; the policies read the tenant through a function that
the planner inlines (no SECURITY DEFINER, no SET clause) and that holds no subquery.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenantry.core.sqlstate import sqlstate_of
from tenantry.settings import Settings
from tenantry.tenancy.session import (
    CURRENT_TENANT_FUNCTION,
    SET_CONTEXT_FUNCTION,
    TENANT_SETTING,
    set_statement_timeout,
    set_transaction_context,
)
from tests.support import Tenant, plan_as_tenant, snapshot_rows

SIGNATURE = f"public.{SET_CONTEXT_FUNCTION}(text, uuid, uuid, integer)"
CALL = text(f"SELECT public.{SET_CONTEXT_FUNCTION}(CAST(:r AS text), CAST(:t AS uuid), NULL, 5000)")
CONTEXT = text(
    f"SELECT current_user::text, current_setting('{TENANT_SETTING}', true), current_setting('statement_timeout')"
)
PRODUCTS = text("SELECT count(*) FROM public.products")


async def _refused(connection: AsyncConnection, role: str, tenant: uuid.UUID) -> str:
    """Call the function directly in a savepoint; the SQLSTATE it failed with."""
    savepoint = await connection.begin_nested()
    with pytest.raises(DBAPIError) as raised:
        await connection.execute(CALL, {"r": role, "t": tenant})
    await savepoint.rollback()
    return sqlstate_of(raised.value) or ""


@pytest.mark.parametrize("role", ["tenant", "platform"])
async def test_a_switched_transaction_cannot_set_another_tenant(
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
    role: str,
) -> None:
    db_role = settings.tenant_role if role == "tenant" else settings.platform_role
    before = await snapshot_rows(admin_engine, "products", tenant_b.id)
    async with app_engine.connect() as connection:
        await set_transaction_context(connection, role=db_role, tenant_id=tenant_a.id)
        assert await _refused(connection, db_role, tenant_b.id) == "42501"
        # Still tenant A, in the same role: nothing of B's is visible.
        current_user, tenant, _ = (await connection.execute(CONTEXT)).one()
        assert (current_user, tenant) == (db_role, str(tenant_a.id))
        if role == "tenant":
            rows = await connection.execute(text("SELECT DISTINCT tenant_id FROM public.products"))
            assert {row[0] for row in rows} <= {tenant_a.id}
        await connection.rollback()
    assert await snapshot_rows(admin_engine, "products", tenant_b.id) == before


async def test_the_function_refuses_a_role_that_is_not_the_login_role(
    admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """The owner may execute what it owns: the function's own check is what refuses it."""
    async with admin_engine.connect() as connection:
        await connection.execute(text(f'SET LOCAL ROLE "{settings.owner_role}"'))
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(CALL, {"r": settings.tenant_role, "t": tenant_a.id})
        assert sqlstate_of(raised.value) == "42501"
        assert "login role only" in str(raised.value)
        await connection.rollback()


async def test_switching_again_goes_back_to_the_login_role_first(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """What `UnitOfWork.become` does: one transaction, two roles and two tenants, one after the other."""
    async with app_engine.connect() as connection:
        await set_transaction_context(connection, role=settings.tenant_role, tenant_id=tenant_a.id)
        assert tuple((await connection.execute(CONTEXT)).one())[:2] == (settings.tenant_role, str(tenant_a.id))
        await set_transaction_context(
            connection, role=settings.platform_role, tenant_id=tenant_b.id, statement_timeout_ms=1234, switched=True
        )
        assert tuple((await connection.execute(CONTEXT)).one()) == (settings.platform_role, str(tenant_b.id), "1234ms")
        await connection.rollback()


async def test_no_tenant_is_an_empty_setting_and_no_rows(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    async with app_engine.connect() as connection:
        await set_transaction_context(connection, role=settings.tenant_role, tenant_id=None)
        assert tuple((await connection.execute(CONTEXT)).one())[:2] == (settings.tenant_role, "")
        assert (await connection.execute(PRODUCTS)).scalar_one() == 0
        await connection.rollback()


async def test_only_the_login_role_may_execute_the_function(admin_engine: AsyncEngine, settings: Settings) -> None:
    async with admin_engine.connect() as connection:
        secdef, config = (
            await connection.execute(
                text("SELECT prosecdef, proconfig FROM pg_proc WHERE oid = CAST(:f AS regprocedure)"),
                {"f": SIGNATURE},
            )
        ).one()
        assert secdef is False  # SECURITY INVOKER: SET ROLE is checked against the caller's memberships
        assert config == ["search_path=pg_catalog, pg_temp"]
        for role, allowed in (
            (settings.app_role, True),
            (settings.tenant_role, False),
            (settings.platform_role, False),
            ("public", False),
        ):
            may = (
                await connection.execute(
                    text("SELECT has_function_privilege(CAST(:r AS text), CAST(:f AS text), 'EXECUTE')"),
                    {"r": role, "f": SIGNATURE},
                )
            ).scalar_one()
            assert may is allowed, role


async def test_the_policies_read_the_tenant_through_an_inlinable_function(
    admin_engine: AsyncEngine, settings: Settings
) -> None:
    """STABLE SQL, not SECURITY DEFINER, no SET clause: the planner inlines it into the bare expression."""
    async with admin_engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT p.provolatile::text, p.prosecdef, p.proconfig, l.lanname::text "
                    "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                    "WHERE p.oid = CAST(:f AS regprocedure)"
                ),
                {"f": f"public.{CURRENT_TENANT_FUNCTION}()"},
            )
        ).one()
        assert tuple(row) == ("s", False, None, "sql")
        subqueries = (
            await connection.execute(
                text(
                    "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public' "
                    "AND (qual ILIKE '%select%' OR with_check ILIKE '%select%')"
                )
            )
        ).all()
        assert subqueries == []


async def test_the_policy_is_planned_as_the_bare_expression(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """Inlined: the plan compares with current_setting() directly, with no function call and no initPlan."""
    plan = await plan_as_tenant(app_engine, settings, tenant_a.id, text("SELECT id FROM public.products"))
    assert f"current_setting('{TENANT_SETTING}'" in plan, plan
    assert CURRENT_TENANT_FUNCTION not in plan, plan
    assert "InitPlan" not in plan, plan


async def test_a_longer_timeout_keeps_the_role_and_the_tenant(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant
) -> None:
    """What a purge does: SET LOCAL, so on Citus the workers get the longer timeout too."""
    async with app_engine.connect() as connection:
        await set_transaction_context(connection, role=settings.platform_role, tenant_id=tenant_a.id)
        await set_statement_timeout(connection, 600_000)
        assert tuple((await connection.execute(CONTEXT)).one()) == (settings.platform_role, str(tenant_a.id), "10min")
        await connection.rollback()
    for bad in (-1, True, "1; RESET ROLE"):
        with pytest.raises(ValueError, match="non-negative int"):
            await set_statement_timeout(connection, bad)  # type: ignore[arg-type]


async def test_no_citus_setting_on_a_plain_database(admin_engine: AsyncEngine, settings: Settings) -> None:
    """citus.propagate_set_commands is set on the login role only where the citus extension exists."""
    async with admin_engine.connect() as connection:
        citus = (await connection.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'citus'"))).scalar()
        if citus:
            pytest.skip("a Citus database: the setting belongs there (test_citus_distribution.py runs on it)")
        found = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
                    "JOIN pg_database d ON d.oid = s.setdatabase "
                    "WHERE r.rolname = :r AND d.datname = current_database() "
                    "AND array_to_string(s.setconfig, ',') LIKE '%citus.%'"
                ),
                {"r": settings.app_role},
            )
        ).scalar_one()
        assert found == 0
