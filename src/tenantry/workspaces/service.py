"""Platform admin use cases on workspaces, shared by /admin/v1 and `tenantry admin`.

Each public method is one explicit transaction, except idempotent creation (claim, work, and a
release if the work fails) and purge-due (one transaction per workspace). A method that touches one workspace runs inside `tenant_scope(workspace_id)`, so the
platform role reaches that workspace's tenant rows, and only those, and the audit event lands in
both the platform log and the workspace's own log.
"""

from __future__ import annotations

import builtins
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import Table, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.core.errors import Conflict, InvalidInput, NotFound
from tenantry.core.ids import uuid7
from tenantry.core.schemas import Page
from tenantry.core.sqlstate import UNIQUE_VIOLATION, sqlstate_of
from tenantry.http.admin_idempotency import IdempotencyStore, IdempotentRequest, request_fingerprint
from tenantry.members.models import Membership
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.pagination import decode_cursor, encode_cursor
from tenantry.tokens.models import PersonalAccessToken
from tenantry.workspaces.models import Workspace
from tenantry.workspaces.provisioning import TAKEN, check_metadata, provision_workspace, workspace_out
from tenantry.workspaces.purge import delete_workspace_rows
from tenantry.workspaces.schemas import (
    ExportManifest,
    ExportTable,
    MemberUsage,
    PurgeReportOut,
    TokenUsage,
    UsageOut,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspaceOut,
    WorkspaceUpdate,
)
from tenantry.workspaces.tables import tenant_table, tenant_tables

NOT_FOUND = "The resource was not found."
MAX_PURGE_AFTER_DAYS = 365


class AdminWorkspaceService:
    def __init__(self, session: AsyncSession, settings: Settings, cursor_key: bytes) -> None:
        self.session = session
        self.settings = settings
        self.cursor_key = cursor_key
        self.idempotency = IdempotencyStore(session)

    # -- reading -------------------------------------------------------------------------------

    async def _find(self, workspace_id: uuid.UUID, *, lock: bool = False) -> Workspace:
        query = select(Workspace).where(Workspace.id == workspace_id)
        if lock:
            query = query.with_for_update()
        workspace = (await self.session.execute(query)).scalar_one_or_none()
        if workspace is None:
            raise NotFound(NOT_FOUND)
        return workspace

    async def resolve(self, reference: str) -> uuid.UUID:
        """A workspace id from an id or a slug (the CLI accepts either)."""
        condition = Workspace.slug == reference
        with contextlib.suppress(ValueError):  # a slug of 32 hex digits also parses as a uuid: match either
            condition = or_(condition, Workspace.id == uuid.UUID(reference))
        async with self.session.begin():
            found = (await self.session.execute(select(Workspace.id).where(condition).limit(1))).scalar()
        if found is None:
            raise NotFound(f"No workspace has the id or slug {reference!r}.")
        return found

    async def get(self, workspace_id: uuid.UUID) -> WorkspaceOut:
        async with self.session.begin():
            return workspace_out(await self._find(workspace_id))

    async def list(self, *, limit: int, cursor: str | None, status: str | None) -> Page[WorkspaceOut]:
        """Oldest first (ids are time-ordered), keyset-paginated; the cursor is bound to the filter."""
        binding = f"admin-workspaces:admin:{status or ''}"
        after = decode_cursor(cursor, key=self.cursor_key, binding=binding) if cursor else None
        query = select(Workspace).order_by(Workspace.id).limit(limit + 1)
        if status is not None:
            query = query.where(Workspace.status == status)
        if after is not None:
            query = query.where(Workspace.id > after)
        async with self.session.begin():
            rows = list((await self.session.execute(query)).scalars())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, key=self.cursor_key, binding=binding) if has_more else None
        return Page(data=[workspace_out(w) for w in rows], has_more=has_more, next_cursor=next_cursor)

    # -- creating ------------------------------------------------------------------------------

    async def create(self, data: WorkspaceCreate, *, idempotency: IdempotentRequest | None = None) -> WorkspaceCreated:
        """Workspace, owner user (created if new), owner membership and first token: one transaction."""
        check_metadata(data.metadata)
        workspace_id = uuid7()
        try:
            with tenant_scope(workspace_id):
                async with self.session.begin():
                    created = await provision_workspace(self.session, self.settings, workspace_id, data)
                    if idempotency is not None:
                        replay = msgspec.structs.replace(created, owner_token=None, replayed=True)
                        await self.idempotency.complete(idempotency, 201, replay)
        except IntegrityError as exc:
            if sqlstate_of(exc) == UNIQUE_VIOLATION:
                raise Conflict(TAKEN.format("slug or external_id")) from None
            raise
        return created

    async def create_idempotent(
        self, data: WorkspaceCreate, *, admin_token_id: uuid.UUID, key: str
    ) -> tuple[int, WorkspaceCreated]:
        """`create` under an Idempotency-Key: three transactions (claim, work, release on failure)."""
        request = IdempotentRequest(admin_token_id, key, request_fingerprint("createWorkspace", data))
        replay = await self.idempotency.claim(request)
        if replay is not None:
            return replay.status, msgspec.convert(replay.body, WorkspaceCreated)
        try:
            return 201, await self.create(data, idempotency=request)
        except BaseException:
            await self.idempotency.release(request)
            raise

    # -- changing ------------------------------------------------------------------------------

    async def update(self, workspace_id: uuid.UUID, data: WorkspaceUpdate) -> WorkspaceOut:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        if "metadata" in changes:
            check_metadata(changes["metadata"])

        def apply(workspace: Workspace, _: datetime) -> None:
            for field, value in changes.items():
                setattr(workspace, "metadata_" if field == "metadata" else field, value)

        try:
            return await self._change(
                workspace_id,
                "workspace.updated",
                {"active", "suspended", "pending_deletion"},
                apply,
                details={"fields": sorted(changes)},
                skip=not changes,
            )
        except IntegrityError as exc:
            if sqlstate_of(exc) == UNIQUE_VIOLATION:
                raise Conflict(TAKEN.format("external_id")) from None
            raise

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
    ) -> WorkspaceOut:
        """Lock the row, check the state machine, apply, audit in both logs: one transaction."""
        with tenant_scope(workspace_id):
            async with self.session.begin():
                workspace = await self._find(workspace_id, lock=True)
                if workspace.status not in allowed:
                    raise Conflict(f"Not allowed while the workspace is {workspace.status}.")
                if skip:
                    return workspace_out(workspace)
                now = datetime.now(UTC)
                before = workspace.status
                apply(workspace, now)
                workspace.updated_at = now
                await self.session.flush()
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
            async with self.session.begin():
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
        async with self.session.begin():
            due = list(
                (
                    await self.session.execute(
                        select(Workspace.id)
                        .where(Workspace.status == "pending_deletion", Workspace.purge_after <= func.now())
                        .order_by(Workspace.purge_after)
                    )
                ).scalars()
            )
        reports: builtins.list[PurgeReportOut] = []
        for workspace_id in due:
            try:
                reports.append(await self.purge(workspace_id))
            except Conflict:  # restored or purged by someone else meanwhile
                continue
        return reports

    # -- usage and export ----------------------------------------------------------------------

    async def _row_counts(self, workspace_id: uuid.UUID) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table in tenant_tables():
            query = select(func.count()).select_from(table).where(table.c.tenant_id == workspace_id)
            counts[str(table.name)] = int((await self.session.execute(query)).scalar_one())
        return counts

    async def usage(self, workspace_id: uuid.UUID) -> UsageOut:
        with tenant_scope(workspace_id):
            async with self.session.begin():
                await self._find(workspace_id)
                members = (
                    await self.session.execute(
                        select(func.count(), func.count().filter(Membership.is_active)).where(
                            Membership.tenant_id == workspace_id
                        )
                    )
                ).one()
                live = (PersonalAccessToken.revoked_at.is_(None)) & (PersonalAccessToken.expires_at > func.now())
                tokens = (
                    await self.session.execute(
                        select(func.count(), func.count().filter(live)).where(
                            PersonalAccessToken.tenant_id == workspace_id
                        )
                    )
                ).one()
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
        """What an export holds, with row counts at this moment; audited as the start of an export."""
        with tenant_scope(workspace_id):
            async with self.session.begin():
                workspace = await self._find(workspace_id)
                self._refuse_purged(workspace)
                counts = await self._row_counts(workspace_id)
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

    async def start_table_export(self, workspace_id: uuid.UUID, table_name: str) -> Table:
        """Check the workspace and the table and audit the download; the rows stream afterwards."""
        table = tenant_table(table_name)
        with tenant_scope(workspace_id):
            async with self.session.begin():
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
