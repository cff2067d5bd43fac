"""Data access for the global workspaces table, and for all of one workspace's tenant rows.

`WorkspaceRepository` is a plain (global) repository: the workspace row is the control plane's.
`WorkspaceRows` is the tenant repository over every tenant table at once, for what the lifecycle
does to a whole workspace (usage counts, purge, export); its filter comes from the base, like
every other tenant query's.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy import Select, Table, delete, func, or_, select, tuple_

from tenantry.tenancy.repository import Repository, TenantRepository
from tenantry.workspaces.models import Workspace
from tenantry.workspaces.schemas import WorkspaceFilters


class WorkspaceRepository(Repository[Workspace]):
    model = Workspace
    resource = "admin-workspaces"

    async def id_for(self, reference: str) -> uuid.UUID | None:
        """A workspace id from an id or a slug."""
        condition = Workspace.slug == reference
        with contextlib.suppress(ValueError):  # a slug of 32 hex digits also parses as a uuid: match either
            condition = or_(condition, Workspace.id == uuid.UUID(reference))
        return await self.scalar(self.select(Workspace.id).where(condition).limit(1))  # type: ignore[no-any-return]

    async def id_of_slug(self, slug: str) -> uuid.UUID | None:
        return await self.scalar(self.select(Workspace.id).where(Workspace.slug == slug))  # type: ignore[no-any-return]

    async def taken(self, slug: str, external_id: str | None) -> str | None:
        """The slug of a workspace that already has this slug or external id, if any."""
        taken = Workspace.slug == slug
        if external_id is not None:  # `== None` would be IS NULL and match every workspace
            taken = or_(taken, Workspace.external_id == external_id)
        return await self.scalar(self.select(Workspace.slug).where(taken).limit(1))  # type: ignore[no-any-return]

    async def login_target(self, slug: str) -> Any:
        """(id, status, max_token_lifetime_days) of the workspace with this slug, for password login."""
        return await self.first(
            self.select(Workspace.id, Workspace.status, Workspace.max_token_lifetime_days).where(Workspace.slug == slug)
        )

    async def due_for_purge(self) -> list[uuid.UUID]:
        query = (
            self.select(Workspace.id)
            .where(Workspace.status == "pending_deletion", Workspace.purge_after <= func.now())
            .order_by(Workspace.purge_after)
        )
        return list(await self.scalars(query))

    def matching(self, filters: WorkspaceFilters) -> Select[Any]:
        query = self.select()
        if filters.status is not None:
            query = query.where(Workspace.status == filters.status)
        return query


class WorkspaceRows(TenantRepository[Any]):
    """One workspace's rows in any tenant table (the caller runs inside `tenant_scope` for it)."""

    resource = "workspace-rows"

    async def count(self, table: Table) -> int:
        return int(
            (await self.session.execute(self.scoped(select(func.count()).select_from(table), table))).scalar_one()
        )

    async def delete_all(self, table: Table) -> int:
        result = await self.session.execute(delete(table).where(self.tenant_filter(table)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def batch(self, table: Table, columns: list[Any], *, after: tuple[Any, ...] | None, size: int) -> Select[Any]:
        """The next `size` rows in primary-key order, after the key `after` (keyset, no cursor held)."""
        key = list(table.primary_key.columns)
        query = self.scoped(select(*columns), table).order_by(*key).limit(size)
        if after is not None:
            query = query.where(tuple_(*key) > tuple_(*after))
        return query
