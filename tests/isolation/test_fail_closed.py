"""docs/security.md, contract rule 3: with no tenant in context, zero rows are visible and every write is rejected."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.catalog.models import Product
from tenantry.core.sqlstate import sqlstate_of
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.session import set_transaction_context, tenant_session_factory
from tenantry.workspaces.tables import tenant_tables_children_first
from tests.support import Tenant, as_tenant

INSERT = text(
    "INSERT INTO public.products (tenant_id, id, name, price_cents, currency, sku) "
    "VALUES (:t, :id, 'x', 1, 'EUR', :sku)"
)


async def _seed(app_engine: AsyncEngine, settings: Settings, tenant: Tenant) -> None:
    async with app_engine.begin() as connection:
        await as_tenant(connection, settings, tenant.id)
        await connection.execute(INSERT, {"t": tenant.id, "id": uuid.uuid4(), "sku": uuid.uuid4().hex[:10]})


TENANT_TABLES = sorted(t.name for t in tenant_tables_children_first())


@pytest.mark.parametrize("role", ["tenant", "platform"])
async def test_no_tenant_sees_zero_rows_in_any_tenant_table(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, role: str
) -> None:
    """Both serving roles, every tenant table (found from the models, so a new table is covered)."""
    await _seed(app_engine, settings, tenant_a)
    db_role = settings.tenant_role if role == "tenant" else settings.platform_role
    assert {"products", "memberships", "personal_access_tokens", "invitations", "audit_events"} <= set(TENANT_TABLES)
    async with app_engine.connect() as connection, admin_engine.connect() as truth:
        await set_transaction_context(connection, role=db_role, tenant_id=None)
        for table in TENANT_TABLES:
            query = text(f"SELECT count(*) FROM public.{table}")
            assert (await connection.execute(query)).scalar_one() == 0, table
        # ...while the rows are there: the provisioning alone wrote memberships, tokens and audit events.
        for table in ("products", "memberships", "personal_access_tokens", "audit_events"):
            assert (await truth.execute(text(f"SELECT count(*) FROM public.{table}"))).scalar_one() > 0, table


async def test_no_tenant_insert_is_rejected(app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant) -> None:
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, None)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(INSERT, {"t": tenant_a.id, "id": uuid.uuid4(), "sku": "no-tenant"})
        assert sqlstate_of(raised.value) == "42501"


async def test_setting_is_transaction_local(app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant) -> None:
    """After COMMIT the setting reads as '' on the same connection; nullif turns that into no rows."""
    await _seed(app_engine, settings, tenant_a)
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_a.id)
        assert (await connection.execute(text("SELECT count(*) FROM public.products"))).scalar_one() >= 1
        await connection.commit()
        leftover = (await connection.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar_one()
        assert leftover in ("", None)
        role = (await connection.execute(text("SELECT current_user"))).scalar_one()
        assert role == settings.app_role
        await as_tenant(connection, settings, None)
        assert (await connection.execute(text("SELECT count(*) FROM public.products"))).scalar_one() == 0


async def test_app_role_without_tenant_role_reads_nothing(app_engine: AsyncEngine) -> None:
    async with app_engine.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELECT count(*) FROM public.products"))
        assert sqlstate_of(raised.value) == "42501"


async def test_session_hook_fires_and_rls_alone_isolates(
    app_engine: AsyncEngine, settings: Settings, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """An unfiltered SELECT through the app's session class sees only the principal's workspace.

    No WHERE tenant_id here: this is RLS doing the work, not the repository's filter.
    """
    await _seed(app_engine, settings, tenant_a)
    await _seed(app_engine, settings, tenant_b)
    factory = tenant_session_factory(app_engine, settings)
    with tenant_scope(tenant_a.id, tenant_a.workspace.owner_user_id):
        async with factory() as session, session.begin():
            role, tenant = (await session.execute(text("SELECT current_user, current_setting('app.tenant_id')"))).one()
            tenants = set((await session.execute(select(Product.tenant_id))).scalars())
    assert role == settings.tenant_role
    assert tenant == str(tenant_a.id)
    assert tenants == {tenant_a.id}

    async with factory() as session, session.begin():  # no tenant scope in context now
        assert (await session.execute(select(Product))).first() is None
