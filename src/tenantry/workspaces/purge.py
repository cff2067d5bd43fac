"""Hard-deleting one workspace's rows from every tenant table, inside the caller's transaction.

The caller runs the transaction inside `tenant_scope(workspace_id)`: the platform role is bound by
the same tenant policy as the tenant role, so even a wrong WHERE clause here could only ever
delete rows of that one workspace. Children go first (reverse of `metadata.sorted_tables`), so no
foreign key is ever left dangling mid-purge.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.tenancy.session import set_statement_timeout
from tenantry.tokens.repository import TokenRepository
from tenantry.workspaces.repository import WorkspaceRows
from tenantry.workspaces.tables import tenant_tables_children_first

# A purge may touch many rows; it gets ten minutes instead of the request timeout.
PURGE_STATEMENT_TIMEOUT_MS = 600_000


async def delete_workspace_rows(session: AsyncSession, workspace_id: uuid.UUID) -> dict[str, int]:
    """Delete every row of the workspace in every tenant table; return the count per table."""
    await set_statement_timeout(session, PURGE_STATEMENT_TIMEOUT_MS)
    rows = WorkspaceRows(session, workspace_id)
    deleted = {str(table.name): await rows.delete_all(table) for table in tenant_tables_children_first()}
    # The directory is global (the workspace row stays as a tombstone, so its ON DELETE CASCADE does
    # not fire): the digests of the tokens just deleted go too. Not in the report, which counts the
    # workspace's own data.
    await TokenRepository(session, workspace_id).forget_directory_entries()
    return deleted
