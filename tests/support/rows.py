"""Ground truth past RLS (the privileged account), and raw app-role connections as a tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenantry.settings import Settings
from tenantry.tenancy.session import set_transaction_context
from tenantry.workspaces.tables import tenant_tables


async def as_tenant(connection: AsyncConnection, settings: Settings, tenant_id: uuid.UUID | None) -> None:
    """Switch a raw app-role connection's transaction to the tenant role, as the session hook does."""
    await set_transaction_context(connection, role=settings.tenant_role, tenant_id=tenant_id)


async def plan_as_tenant(app_engine: AsyncEngine, settings: Settings, tenant_id: uuid.UUID, query: Any) -> str:
    """PostgreSQL's plan for a repository query, planned as the tenant role with its policy applied."""
    sql = str(query.compile(dialect=app_engine.dialect, compile_kwargs={"literal_binds": True}))
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_id)
        return "\n".join(row[0] for row in await connection.exec_driver_sql("EXPLAIN " + sql))


async def snapshot_rows(admin_engine: AsyncEngine, table: str, tenant_id: uuid.UUID | str) -> list[str]:
    """Every row of one tenant in `table`, as exact text, read past RLS as the privileged account."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT t::text FROM public.{table} AS t WHERE tenant_id = :t ORDER BY t::text"),
            {"t": tenant_id},
        )
        return [r[0] for r in rows]


async def snapshot_workspace(admin_engine: AsyncEngine, tenant_id: uuid.UUID | str) -> dict[str, list[str]]:
    """Every row of the workspace in every tenant table, as exact text, past RLS, on one connection."""
    async with admin_engine.connect() as connection:
        return {
            table.name: list(
                (
                    await connection.execute(
                        text(f"SELECT t::text FROM public.{table.name} AS t WHERE tenant_id = :t ORDER BY 1"),
                        {"t": tenant_id},
                    )
                ).scalars()
            )
            for table in tenant_tables()
        }
