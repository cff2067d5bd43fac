"""Exporting one workspace's table as JSON Lines (`application/jsonl`), streamed in batches.

One JSON object per row and per line, with values in a form that reads back without guessing:
uuids and timestamps as strings (RFC 3339), JSONB as JSON, bytes as base64, numerics as strings.
Secret digests are never exported (see `tables.is_secret`).

The stream owns its sessions: a response body is sent after the request's dependencies are
cleaned up, so it cannot borrow the request's session. Each batch is a short transaction of its
own inside `tenant_scope(workspace_id)` (keyset pagination on the primary key, no long-held
transaction or cursor, so it also works behind PgBouncer). Rows changed while the export runs may
or may not be included: suspend the workspace first for a point-in-time export.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.workspaces.repository import WorkspaceRows
from tenantry.workspaces.tables import exportable_columns

EXPORT_MEDIA_TYPE = "application/jsonl"
DEFAULT_BATCH_SIZE = 500


def encode_row(names: list[str], values: tuple[Any, ...]) -> bytes:
    return msgspec.json.encode(dict(zip(names, values, strict=True))) + b"\n"


class WorkspaceExporter:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.session_factory = session_factory
        self.batch_size = batch_size

    async def stream(self, workspace_id: uuid.UUID, table: Table) -> AsyncIterator[bytes]:
        """Yield the table's rows of this workspace, one chunk of JSON lines per batch."""
        columns = exportable_columns(table)
        names = [column.name for column in columns]
        key_positions = [names.index(column.name) for column in table.primary_key.columns]
        after: tuple[Any, ...] | None = None
        while True:
            # The scope and the transaction end before the yield: nothing is held open while the
            # client reads, and the tenant never leaks into whatever runs between two batches.
            with tenant_scope(workspace_id):
                async with self.session_factory() as session, UnitOfWork(session).transaction():
                    query = WorkspaceRows(session, workspace_id).batch(
                        table, columns, after=after, size=self.batch_size
                    )
                    rows = [tuple(row) for row in await session.execute(query)]
            if not rows:
                return
            yield b"".join(encode_row(names, row) for row in rows)
            if len(rows) < self.batch_size:
                return
            after = tuple(rows[-1][i] for i in key_positions)
