"""Hard-deleting one workspace's rows from every tenant table, inside the caller's transaction.

The caller runs the transaction inside `tenant_scope(workspace_id)`: the platform role is bound by
the same tenant policy as the tenant role, so even a wrong WHERE clause here could only ever
delete rows of that one workspace. Children go first (reverse of `metadata.sorted_tables`), so no
foreign key is ever left dangling mid-purge.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.admin.tables import tenant_tables_children_first
from tenantry.audit.models import PlatformAuditEvent
from tenantry.core.context import current_admin, current_request_id
from tenantry.core.ids import uuid7

# A purge may touch many rows; it gets ten minutes instead of the request timeout.
PURGE_STATEMENT_TIMEOUT_MS = 600_000


async def delete_workspace_rows(session: AsyncSession, workspace_id: uuid.UUID) -> dict[str, int]:
    """Delete every row of the workspace in every tenant table; return the count per table."""
    await session.execute(
        text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": str(PURGE_STATEMENT_TIMEOUT_MS)}
    )
    counts: dict[str, int] = {}
    for table in tenant_tables_children_first():
        result = await session.execute(delete(table).where(table.c.tenant_id == workspace_id))
        counts[str(table.name)] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return counts


def record_purge(session: AsyncSession, workspace_id: uuid.UUID, details: dict[str, Any]) -> None:
    """The purge's audit event, in the platform log only.

    `record_event(tenant_id=...)` would also write the event into the workspace's own log, i.e.
    leave a row in a table the purge has just emptied; the workspace log is part of what is
    purged, so this one event goes to the platform log alone (same columns as the recorder).
    """
    admin = current_admin.get()
    session.add(
        PlatformAuditEvent(
            id=uuid7(),
            actor=admin.name if admin else "system",
            admin_token_id=admin.token_id if admin else None,
            token_fingerprint=admin.token_fingerprint if admin else None,
            request_id=current_request_id.get(),
            action="workspace.purged",
            workspace_id=workspace_id,
            details={"target_type": "workspace", "target_id": str(workspace_id), **details},
        )
    )
