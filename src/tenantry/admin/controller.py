"""/admin/v1: the platform admin API. Admin tokens (`tna_`) only; every route also guards itself.

The handlers are thin: the same service methods back `tenantry admin ...` at the command line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.platform import AdminAuditService
from tenantry.auditlog.schemas import PlatformAuditEventOut, PlatformAuditFilters
from tenantry.auth.guards import requires_admin
from tenantry.auth.handlers import get, patch, post
from tenantry.core.schemas import END, Page
from tenantry.http.idempotency import IDEMPOTENT_OPT, REDACT_OPT
from tenantry.http.querying import Cursor, Limit
from tenantry.tenancy.pagination import PageRequest
from tenantry.workspaces.export import EXPORT_MEDIA_TYPE, WorkspaceExporter
from tenantry.workspaces.plans import WorkspacePlanService
from tenantry.workspaces.schemas import (
    WORKSPACE_STATUS_PATTERN,
    ExportManifest,
    PlanOut,
    PlanUpdate,
    PurgeReportOut,
    PurgeRequest,
    ScheduleDeletion,
    UsageOut,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspaceFilters,
    WorkspaceOut,
    WorkspaceUpdate,
)
from tenantry.workspaces.service import AdminWorkspaceService

BASE = "/admin/v1/workspaces"


def provide_admin_workspace_service(
    platform_session: NamedDependency[AsyncSession], state: State
) -> AdminWorkspaceService:
    return AdminWorkspaceService(platform_session, state.settings, state.cursor_key)


def provide_workspace_plan_service(
    platform_session: NamedDependency[AsyncSession], state: State
) -> WorkspacePlanService:
    return WorkspacePlanService(platform_session, state.settings)


def provide_workspace_exporter(state: State) -> WorkspaceExporter:
    return WorkspaceExporter(state.platform_session_factory)


def provide_admin_audit_service(platform_session: NamedDependency[AsyncSession], state: State) -> AdminAuditService:
    return AdminAuditService(platform_session, state.cursor_key)


def export_href(workspace_id: uuid.UUID) -> Callable[[str], str]:
    return lambda table: f"{BASE}/{workspace_id}/export/{table}"


StatusFilter = Annotated[
    str | None,
    Parameter(pattern=WORKSPACE_STATUS_PATTERN, description="Only workspaces in this status."),
]
ActionFilter = Annotated[
    str | None, Parameter(max_length=64, pattern=r"^[a-z0-9_.]+" + END, description="e.g. workspace.suspended")
]
WorkspaceFilter = Annotated[uuid.UUID | None, Parameter(description="Only events about this workspace.")]
TableName = Annotated[str, Parameter(max_length=63, description="A table named in the export manifest.")]


class AdminWorkspaceController(Controller):
    path = BASE
    tags = ["Admin: workspaces"]
    dependencies = {
        "admin_workspace_service": Provide(provide_admin_workspace_service, sync_to_thread=False),
        "workspace_exporter": Provide(provide_workspace_exporter, sync_to_thread=False),
        "workspace_plan_service": Provide(provide_workspace_plan_service, sync_to_thread=False),
    }

    @post(
        "/",
        operation_id="createWorkspace",
        guards=[requires_admin],
        status_code=201,
        opt={IDEMPOTENT_OPT: True, REDACT_OPT: ("owner_token",)},
    )
    async def create_workspace(
        self, data: JSONBody[WorkspaceCreate], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> Response[WorkspaceCreated]:
        """Create a workspace and its owner; the answer carries the owner's first token, once.

        Under an `Idempotency-Key`, a repeat with the same body replays the first status and body
        (with `Idempotent-Replayed: true`, `replayed: true` and `owner_token: null`).
        """
        created = await admin_workspace_service.create(data)
        return Response(created, status_code=201, headers={"Location": f"{BASE}/{created.workspace.id}"})

    @get("/", operation_id="listWorkspaces", guards=[requires_admin])
    async def list_workspaces(
        self,
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
        limit: Limit = 20,
        cursor: Cursor = None,
        status: StatusFilter = None,
    ) -> Page[WorkspaceOut]:
        """List workspaces, oldest first, with keyset pagination."""
        return await admin_workspace_service.list(
            PageRequest(limit=limit, cursor=cursor), WorkspaceFilters(status=status)
        )

    @get("/{workspace_id:str}", operation_id="getWorkspace", guards=[requires_admin])
    async def get_workspace(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> WorkspaceOut:
        """Get one workspace, tombstones included."""
        return await admin_workspace_service.get(workspace_id)

    @patch("/{workspace_id:str}", operation_id="updateWorkspace", guards=[requires_admin])
    async def update_workspace(
        self,
        workspace_id: FromPath[uuid.UUID],
        data: JSONBody[WorkspaceUpdate],
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
    ) -> WorkspaceOut:
        """Change name, external_id, metadata or the token-lifetime cap (fields present only)."""
        return await admin_workspace_service.update(workspace_id, data)

    @get("/{workspace_id:str}/plan", operation_id="getWorkspacePlan", guards=[requires_admin])
    async def get_workspace_plan(
        self, workspace_id: FromPath[uuid.UUID], workspace_plan_service: NamedDependency[WorkspacePlanService]
    ) -> PlanOut:
        """The workspace's request limits: its own (`null`: the deployment's default) and those in force."""
        return await workspace_plan_service.get(workspace_id)

    @patch("/{workspace_id:str}/plan", operation_id="updateWorkspacePlan", guards=[requires_admin])
    async def update_workspace_plan(
        self,
        workspace_id: FromPath[uuid.UUID],
        data: JSONBody[PlanUpdate],
        workspace_plan_service: NamedDependency[WorkspacePlanService],
    ) -> PlanOut:
        """Change the workspace's request limits (fields present only; `null` restores the default).

        Takes effect on the workspace's next request, in every API process. Audited as
        `workspace.plan_changed`.
        """
        return await workspace_plan_service.update(workspace_id, data)

    @post("/{workspace_id:str}/suspend", operation_id="suspendWorkspace", guards=[requires_admin], status_code=200)
    async def suspend_workspace(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> WorkspaceOut:
        """Suspend an active workspace: its tokens get 403 `workspace-suspended` until reactivated."""
        return await admin_workspace_service.suspend(workspace_id)

    @post(
        "/{workspace_id:str}/reactivate", operation_id="reactivateWorkspace", guards=[requires_admin], status_code=200
    )
    async def reactivate_workspace(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> WorkspaceOut:
        """Lift a suspension."""
        return await admin_workspace_service.reactivate(workspace_id)

    @post(
        "/{workspace_id:str}/schedule-deletion",
        operation_id="scheduleWorkspaceDeletion",
        guards=[requires_admin],
        status_code=200,
    )
    async def schedule_deletion(
        self,
        workspace_id: FromPath[uuid.UUID],
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
        data: JSONBody[ScheduleDeletion | None] = None,
    ) -> WorkspaceOut:
        """Mark the workspace pending_deletion; it is purged after `purge_after_days` (default 30)."""
        days = data.purge_after_days if data is not None else ScheduleDeletion().purge_after_days
        return await admin_workspace_service.schedule_deletion(workspace_id, days)

    @post("/{workspace_id:str}/restore", operation_id="restoreWorkspace", guards=[requires_admin], status_code=200)
    async def restore_workspace(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> WorkspaceOut:
        """Cancel a scheduled deletion before its purge date; the workspace is active again."""
        return await admin_workspace_service.restore(workspace_id)

    @post("/{workspace_id:str}/purge", operation_id="purgeWorkspace", guards=[requires_admin], status_code=200)
    async def purge_workspace(
        self,
        workspace_id: FromPath[uuid.UUID],
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
        data: JSONBody[PurgeRequest | None] = None,
    ) -> PurgeReportOut:
        """Hard-delete every row of a workspace scheduled for deletion; keep a tombstone.

        Allowed once `purge_after` has passed, or earlier with `{"confirm_slug": "<slug>"}`.
        Answers the number of rows deleted per table.
        """
        confirm_slug = data.confirm_slug if data is not None else None
        return await admin_workspace_service.purge(workspace_id, confirm_slug=confirm_slug)

    @get("/{workspace_id:str}/usage", operation_id="getWorkspaceUsage", guards=[requires_admin])
    async def workspace_usage(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> UsageOut:
        """Members (total, active), tokens (total, active: not revoked, not expired), rows per table."""
        return await admin_workspace_service.usage(workspace_id)

    # A purged workspace has nothing left to export: 409.
    @get(
        "/{workspace_id:str}/export",
        operation_id="getWorkspaceExportManifest",
        guards=[requires_admin],
        opt={"problems": (409,)},
    )
    async def export_manifest(
        self, workspace_id: FromPath[uuid.UUID], admin_workspace_service: NamedDependency[AdminWorkspaceService]
    ) -> ExportManifest:
        """The export's manifest: one JSON Lines stream per tenant table, with its row count and URL."""
        return await admin_workspace_service.export_manifest(workspace_id, export_href(workspace_id), EXPORT_MEDIA_TYPE)

    @get(
        "/{workspace_id:str}/snapshot",
        operation_id="exportWorkspaceSnapshot",
        guards=[requires_admin],
        opt={"problems": (409,)},
        media_type=EXPORT_MEDIA_TYPE,
    )
    async def export_snapshot(
        self,
        workspace_id: FromPath[uuid.UUID],
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
        workspace_exporter: NamedDependency[WorkspaceExporter],
    ) -> Stream:
        """Stream the whole workspace as it was at one instant, as `application/jsonl`.

        Every table is read in one `REPEATABLE READ, READ ONLY` transaction, so nothing written
        meanwhile is included. The first line is the workspace, `exported_at` (the snapshot's
        time) and `tables` (name and row count of each); then one line per row,
        `{"table": ..., "row": {...}}`, parents before children. Token digests and internal
        caches (stored idempotent answers) are never exported.
        """
        workspace = await admin_workspace_service.start_snapshot_export(workspace_id)
        header = {"workspace": msgspec.to_builtins(workspace), "format": EXPORT_MEDIA_TYPE}
        return Stream(
            workspace_exporter.stream_all(workspace_id, header),
            media_type=EXPORT_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{workspace.slug}.jsonl"'},
        )

    @get(
        "/{workspace_id:str}/export/{table:str}",
        operation_id="exportWorkspaceTable",
        guards=[requires_admin],
        opt={"problems": (409,)},
        media_type=EXPORT_MEDIA_TYPE,
    )
    async def export_table(
        self,
        workspace_id: FromPath[uuid.UUID],
        table: FromPath[TableName],
        admin_workspace_service: NamedDependency[AdminWorkspaceService],
        workspace_exporter: NamedDependency[WorkspaceExporter],
    ) -> Stream:
        """Stream one table of the workspace as `application/jsonl`: one JSON object per row per line.

        The table is read in one `REPEATABLE READ, READ ONLY` transaction of its own: for every
        table at one instant, use the snapshot. uuids and timestamps are strings, JSONB is JSON, bytes are base64; token digests are never
        exported. An unknown table answers 404.
        """
        found = await admin_workspace_service.start_table_export(workspace_id, table)
        return Stream(
            workspace_exporter.stream(workspace_id, found),
            media_type=EXPORT_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{found.name}.jsonl"'},
        )


class AdminAuditController(Controller):
    path = "/admin/v1/audit-events"
    tags = ["Admin: audit"]
    dependencies = {"admin_audit_service": Provide(provide_admin_audit_service, sync_to_thread=False)}

    @get("/", operation_id="listPlatformAuditEvents", guards=[requires_admin])
    async def list_platform_audit_events(
        self,
        admin_audit_service: NamedDependency[AdminAuditService],
        limit: Limit = 20,
        cursor: Cursor = None,
        action: ActionFilter = None,
        workspace_id: WorkspaceFilter = None,
    ) -> Page[PlatformAuditEventOut]:
        """The platform audit log, newest first, with keyset pagination."""
        return await admin_audit_service.list(
            PageRequest(limit=limit, cursor=cursor), PlatformAuditFilters(action=action, workspace_id=workspace_id)
        )


__all__ = ["AdminAuditController", "AdminWorkspaceController"]
