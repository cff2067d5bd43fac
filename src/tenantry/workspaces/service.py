"""Platform admin use cases on workspaces, shared by /admin/v1 and `tenantry admin`.

Each public method is one unit of work, except purge-due (one per workspace). A method that
touches one workspace runs inside `tenant_scope(workspace_id)`, so the platform role reaches that
workspace's tenant rows, and only those, and the audit event lands in both the platform log and
the workspace's own log.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.core.errors import Conflict, InvalidInput, NotFound
from tenantry.core.ids import uuid7
from tenantry.core.schemas import Page
from tenantry.members.repository import MembershipRepository
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.tokens.repository import TokenRepository
from tenantry.workspaces.models import Workspace
from tenantry.workspaces.provisioning import TAKEN, check_metadata, provision_workspace, workspace_out
from tenantry.workspaces.purge import delete_workspace_rows
from tenantry.workspaces.repository import WorkspaceRepository, WorkspaceRows
from tenantry.workspaces.schemas import (
    ExportManifest,
    ExportTable,
    MemberUsage,
    PurgeReportOut,
    TokenUsage,
    UsageOut,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspaceFilters,
    WorkspaceOut,
    WorkspaceUpdate,
)
from tenantry.workspaces.tables import exported_table, exported_tables, tenant_tables

NOT_FOUND = "The resource was not found."
MAX_PURGE_AFTER_DAYS = 365


class AdminWorkspaceService:
    def __init__(self, session: AsyncSession, settings: Settings, cursor_key: bytes) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.settings = settings
        self.cursor_key = cursor_key
        self.workspaces = WorkspaceRepository(session)

    # -- reading -------------------------------------------------------------------------------

    async def _find(self, workspace_id: uuid.UUID, *, lock: bool = False) -> Workspace:
        workspace = await self.workspaces.get(workspace_id, lock="update" if lock else None)
        if workspace is None:
            raise NotFound(NOT_FOUND)
        return workspace

    async def resolve(self, reference: str) -> uuid.UUID:
        """A workspace id from an id or a slug (the CLI accepts either)."""
        async with self.uow.transaction():
            found = await self.workspaces.id_for(reference)
        if found is None:
            raise NotFound(f"No workspace has the id or slug {reference!r}.")
        return found

    async def get(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        async with self.uow.transaction():
            return workspace_out(await self._find(workspace_id))

    async def list(self, page: PageRequest, filters: WorkspaceFilters) -> Page[WorkspaceOut]:
        """Oldest first (ids are time-ordered), keyset-paginated; the cursor is bound to the filter."""
        async with self.uow.transaction():
            return await self.workspaces.page(
                self.workspaces.matching(filters),
                page=page,
                ordering=Ordering.by_id(Workspace.id),
                key=self.cursor_key,
                filters=filters,
                to_wire=workspace_out,
            )

    # -- creating ------------------------------------------------------------------------------

    async def create(self, data: WorkspaceCreate) -> WorkspaceCreated:
        """Workspace, owner user (created if new), owner membership and first token: one transaction.

        Under an Idempotency-Key the answer is stored in this same transaction (http/idempotency.py).
        """
        check_metadata(data.metadata)
        workspace_id = uuid7()
        with tenant_scope(workspace_id):
            async with self.uow.transaction(unique=Conflict(TAKEN.format("slug or external_id"))):
                return await provision_workspace(self.session, self.settings, workspace_id, data)

    # -- changing ------------------------------------------------------------------------------

    async def update(self, workspace_id: uuid.UUID, data: WorkspaceUpdate) -> WorkspaceOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if "metadata" in changes:
            check_metadata(changes["metadata"])

        def apply(workspace: Workspace, _: datetime) -> None:
            for field, value in changes.items():
                setattr(workspace, "metadata_" if field == "metadata" else field, value)

        return await self._change(
            workspace_id,
            "workspace.updated",
            {"active", "suspended", "pending_deletion"},
            apply,
            details={"fields": sorted(changes)},
            skip=not changes,
            unique=Conflict(TAKEN.format("external_id")),
        )

    async def suspend(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        def apply(workspace: Workspace, now: datetime) -> None:
            workspace.status, workspace.suspended_at = "suspended", now

        return await self._change(workspace_id, "workspace.suspended", {"active"}, apply)

    async def reactivate(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        def apply(workspace: Workspace, _: datetime) -> None:
            workspace.status, workspace.suspended_at = "active", None

        return await self._change(workspace_id, "workspace.reactivated", {"suspended"}, apply)

    async def schedule_deletion(self, workspace_id: uuid.UUID, purge_after_days: int = 30) -> WorkspaceOut:
        if not 1 <= purge_after_days <= MAX_PURGE_AFTER_DAYS:
            raise InvalidInput(f"purge_after_days must be 1 to {MAX_PURGE_AFTER_DAYS}.")

        def apply(workspace: Workspace, now: datetime) -> None:
            workspace.status, workspace.purge_after = "pending_deletion", now + timedelta(days=purge_after_days)

        return await self._change(
            workspace_id,
            "workspace.deletion_scheduled",
            {"active", "suspended"},
            apply,
            details={"purge_after_days": purge_after_days},
        )

    async def restore(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        def apply(workspace: Workspace, now: datetime) -> None:
            if workspace.purge_after is not None and workspace.purge_after <= now:
                raise Conflict("The purge date has passed; the workspace can no longer be restored.")
            workspace.status, workspace.purge_after, workspace.suspended_at = "active", None, None

        return await self._change(workspace_id, "workspace.restored", {"pending_deletion"}, apply)

    async def _change(
        self,
        workspace_id: uuid.UUID,
        action: str,
        allowed: set[str],
        apply: Callable[[Workspace, datetime], None],
        *,
        details: dict[str, object] | None = None,
        skip: bool = False,
        unique: Conflict | None = None,
    ) -> WorkspaceOut:
        """Lock the row, check the state machine, apply, audit in both logs: one transaction."""
        with tenant_scope(workspace_id):
            async with self.uow.transaction(unique=unique):
                workspace = await self._find(workspace_id, lock=True)
                if workspace.status not in allowed:
                    raise Conflict(f"Not allowed while the workspace is {workspace.status}.")
                if skip:
                    return workspace_out(workspace)
                now = datetime.now(UTC)
                before = workspace.status
                apply(workspace, now)
                workspace.updated_at = now
                await self.workspaces.save(workspace, refresh=False)
                await record_event(
                    self.session,
                    action,
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    details={"status_before": before, "status": workspace.status, **(details or {})},
                )
                return workspace_out(workspace)

    # -- purging -------------------------------------------------------------------------------

    async def purge(self, workspace_id: uuid.UUID, *, confirm_slug: str | None = None) -> PurgeReportOut:
        """Hard-delete every tenant row of the workspace, keep a tombstone: one transaction."""
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                workspace = await self._find(workspace_id, lock=True)
                if workspace.status != "pending_deletion":
                    raise Conflict(f"Only a workspace scheduled for deletion can be purged; it is {workspace.status}.")
                now = datetime.now(UTC)
                if confirm_slug is not None and confirm_slug != workspace.slug:
                    raise InvalidInput(
                        "confirm_slug does not match the workspace's slug.",
                        errors=[{"field": "confirm_slug", "message": "does not match the workspace's slug"}],
                    )
                if confirm_slug is None and workspace.purge_after is not None and workspace.purge_after > now:
                    raise Conflict("The purge date has not come; pass confirm_slug to purge now.")
                deleted = await delete_workspace_rows(self.session, workspace_id)
                external_id = workspace.external_id
                # The tombstone keeps who it was (slug, name), not what it held.
                workspace.status, workspace.purged_at, workspace.updated_at = "purged", now, now
                workspace.purge_report, workspace.metadata_, workspace.external_id = deleted, {}, None
                await record_event(
                    self.session,
                    "workspace.purged",
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    workspace_log=False,
                    details={
                        "slug": workspace.slug,
                        "external_id": external_id,
                        "early": confirm_slug is not None,
                        "deleted": deleted,
                    },
                )
                await self.session.flush()
                return PurgeReportOut(workspace=workspace_out(workspace), deleted=deleted)

    async def purge_due(self) -> builtins.list[PurgeReportOut]:
        """Purge every workspace whose purge date has passed, each in its own transaction."""
        async with self.uow.transaction():
            due = await self.workspaces.due_for_purge()
        reports: builtins.list[PurgeReportOut] = []
        for workspace_id in due:
            try:
                reports.append(await self.purge(workspace_id))
            except Conflict:  # restored or purged by someone else meanwhile
                continue
        return reports

    # -- usage and export ----------------------------------------------------------------------

    async def _row_counts(self, workspace_id: uuid.UUID) -> dict[str, int]:
        rows = WorkspaceRows(self.session, workspace_id)
        return {str(table.name): await rows.count(table) for table in tenant_tables()}

    async def usage(self, workspace_id: uuid.UUID) -> UsageOut:
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                await self._find(workspace_id)
                members = await MembershipRepository(self.session, workspace_id).counts()
                tokens = await TokenRepository(self.session, workspace_id).counts()
                rows = await self._row_counts(workspace_id)
        return UsageOut(
            workspace_id=workspace_id,
            members=MemberUsage(total=members[0], active=members[1]),
            tokens=TokenUsage(total=tokens[0], active=tokens[1]),
            rows=rows,
        )

    async def export_manifest(
        self, workspace_id: uuid.UUID, href: Callable[[str], str], media_type: str
    ) -> ExportManifest:
        """What an export holds, with row counts at this moment; audited as the start of an export.

        Each table's stream is a snapshot of its own; `start_snapshot_export` is the one snapshot
        of every table (workspaces/export.py).
        """
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                workspace = await self._find(workspace_id)
                self._refuse_purged(workspace)
                rows = WorkspaceRows(self.session, workspace_id)
                counts = {str(table.name): await rows.count(table) for table in exported_tables()}
                await record_event(
                    self.session,
                    "workspace.exported",
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    details={"tables": sorted(counts)},
                )
        return ExportManifest(
            workspace=workspace_out(workspace),
            format=media_type,
            exported_at=datetime.now(UTC),
            tables=[ExportTable(name=name, rows=rows, href=href(name)) for name, rows in counts.items()],
        )

    async def start_snapshot_export(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        """Check the workspace and audit the export; the snapshot streams afterwards."""
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                workspace = await self._find(workspace_id)
                self._refuse_purged(workspace)
                await record_event(
                    self.session,
                    "workspace.exported",
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    details={"tables": sorted(str(t.name) for t in exported_tables()), "snapshot": True},
                )
        return workspace_out(workspace)

    async def start_table_export(self, workspace_id: uuid.UUID, table_name: str) -> Table:
        """Check the workspace and the table and audit the download; the rows stream afterwards."""
        table = exported_table(table_name)
        with tenant_scope(workspace_id):
            async with self.uow.transaction():
                workspace = await self._find(workspace_id)
                if table is None:
                    raise NotFound(NOT_FOUND)
                self._refuse_purged(workspace)
                await record_event(
                    self.session,
                    "workspace.table_exported",
                    "workspace",
                    workspace_id,
                    tenant_id=workspace_id,
                    details={"table": str(table.name)},
                )
        return table

    @staticmethod
    def _refuse_purged(workspace: Workspace) -> None:
        if workspace.status == "purged":
            raise Conflict("The workspace was purged; nothing is left to export.")
