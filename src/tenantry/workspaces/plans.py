"""A workspace's plan (its own request limits), shared by /admin/v1 and `tenantry admin`.

The limits are enforced by http/limits.py with the plan that came with the token. Changing a plan
is audited like every admin action, and takes effect on the next request everywhere: the
database tells every API process to forget the workspace's cached principals (and the plans with
them), and the admin request itself empties its own process's cache before it answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.core.errors import Conflict, NotFound
from tenantry.core.plans import PLAN_FIELDS, LimitValues, PlanLimits
from tenantry.http.limits import default_limits, effective_limits
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.workspaces.models import Workspace, WorkspacePlan
from tenantry.workspaces.schemas import PlanOut, PlanUpdate

NOT_FOUND = "The resource was not found."


def _limits(row: WorkspacePlan | None) -> PlanLimits:
    if row is None:
        return PlanLimits()
    return PlanLimits(**{name: getattr(row, name) for name in PLAN_FIELDS})


class WorkspacePlanService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.defaults: LimitValues = default_limits(settings)

    def _out(self, workspace_id: uuid.UUID, row: WorkspacePlan | None) -> PlanOut:
        plan = _limits(row)
        return PlanOut(
            workspace_id=workspace_id,
            plan=plan,
            effective=effective_limits(self.defaults, plan),
            updated_at=row.updated_at if row is not None else None,
        )

    async def _workspace(self, workspace_id: uuid.UUID, *, lock: bool = False) -> Workspace:
        query = select(Workspace).where(Workspace.id == workspace_id)
        if lock:
            query = query.with_for_update()
        workspace = (await self.session.execute(query)).scalar_one_or_none()
        if workspace is None:
            raise NotFound(NOT_FOUND)
        return workspace

    async def get(self, workspace_id: uuid.UUID) -> PlanOut:
        async with self.uow.transaction():
            await self._workspace(workspace_id)
            row = await self.session.get(WorkspacePlan, workspace_id)
            return self._out(workspace_id, row)

    async def update(self, workspace_id: uuid.UUID, data: PlanUpdate) -> PlanOut:
        """Set the fields present (null: back to the default), audit, one transaction."""
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                workspace = await self._workspace(workspace_id, lock=True)
                if workspace.status == "purged":
                    raise Conflict("The workspace was purged; it has no plan.")
                row = await self.session.get(WorkspacePlan, workspace_id)
                if not changes:
                    return self._out(workspace_id, row)
                before = _limits(row)
                if row is None:
                    row = WorkspacePlan(workspace_id=workspace_id)
                    self.session.add(row)
                for name, value in changes.items():
                    setattr(row, name, value)
                row.updated_at = datetime.now(UTC)
                await self.session.flush()
                after = _limits(row)
                await record_event(
                    self.session,
                    "workspace.plan_changed",
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    details={
                        "fields": sorted(changes),
                        "before": msgspec.structs.asdict(before),
                        "plan": msgspec.structs.asdict(after),
                    },
                )
                return self._out(workspace_id, row)
