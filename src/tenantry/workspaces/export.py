"""Exporting a workspace as JSON Lines (`application/jsonl`), from one point-in-time snapshot.

One JSON object per row and per line, with values in a form that reads back without guessing:
uuids and timestamps as strings (RFC 3339), JSONB as JSON, bytes as base64, numerics as strings.
Secret digests are never exported (see `tables.is_secret`), nor internal caches
(`tables.INTERNAL_TABLES`).

Every read of one export runs in ONE transaction, `REPEATABLE READ, READ ONLY`: the counts and
every table's rows are the workspace as it was when the transaction took its snapshot, whatever
is written meanwhile (docs/07-admin-guide.md, "Exporting a workspace"). The isolation and access
mode are options of the BEGIN itself (the driver starts the transaction with them), so they hold
before the session hook's tenant statement, the transaction's first. Rows are read in keyset
batches inside that transaction; one transaction and no cursor, so it works behind PgBouncer in
transaction mode too. The transaction stays open while the client reads, which holds back vacuum
of the rows it can see for that long.

The stream owns its session: a response body is sent after the request's dependencies are
cleaned up, so it cannot borrow the request's session. The tenant scope is entered only around
the BEGIN (the hook reads it there), never across a yield, so the tenant never leaks into
whatever runs between two batches.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.workspaces.repository import WorkspaceRows
from tenantry.workspaces.tables import exportable_columns, exported_tables

EXPORT_MEDIA_TYPE = "application/jsonl"
DEFAULT_BATCH_SIZE = 500
SNAPSHOT_OPTIONS: dict[str, Any] = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


def encode_row(names: list[str], values: tuple[Any, ...]) -> bytes:
    return msgspec.json.encode(dict(zip(names, values, strict=True))) + b"\n"


class Snapshot:
    """One workspace as of one transaction's snapshot: counts and rows of any exported table."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID, batch_size: int) -> None:
        self.session = session
        self.rows = WorkspaceRows(session, workspace_id)
        self.batch_size = batch_size

    async def taken_at(self) -> datetime:
        """The transaction's start, as the database tells it: when the snapshot was taken."""
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def counts(self) -> dict[str, int]:
        return {str(table.name): await self.rows.count(table) for table in exported_tables()}

    async def chunks(self, table: Table) -> AsyncIterator[bytes]:
        """The table's rows, one chunk of JSON lines per batch, in primary-key order."""
        columns = exportable_columns(table)
        names = [column.name for column in columns]
        key_positions = [names.index(column.name) for column in table.primary_key.columns]
        after: tuple[Any, ...] | None = None
        while True:
            query = self.rows.batch(table, columns, after=after, size=self.batch_size)
            rows = [tuple(row) for row in await self.session.execute(query)]
            if not rows:
                return
            yield b"".join(encode_row(names, row) for row in rows)
            if len(rows) < self.batch_size:
                return
            after = tuple(rows[-1][i] for i in key_positions)


class WorkspaceExporter:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.session_factory = session_factory
        self.batch_size = batch_size

    @asynccontextmanager
    async def snapshot(self, workspace_id: uuid.UUID) -> AsyncIterator[Snapshot]:
        """One `REPEATABLE READ, READ ONLY` transaction of the workspace, for the block."""
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            with tenant_scope(workspace_id):
                await session.connection(execution_options=SNAPSHOT_OPTIONS)  # BEGIN, then the hook
            yield Snapshot(session, workspace_id, self.batch_size)

    async def stream(self, workspace_id: uuid.UUID, table: Table) -> AsyncIterator[bytes]:
        """Yield one table's rows of this workspace, from a snapshot of its own."""
        async with self.snapshot(workspace_id) as snapshot:
            async for chunk in snapshot.chunks(table):
                yield chunk

    async def stream_all(self, workspace_id: uuid.UUID, header: dict[str, Any]) -> AsyncIterator[bytes]:
        """The whole workspace from one snapshot: a first line `header` plus `tables` (name and
        row count), then one line per row, `{"table": name, "row": {...}}`, table after table."""
        async with self.snapshot(workspace_id) as snapshot:
            taken_at, counts = await snapshot.taken_at(), await snapshot.counts()
            tables = [{"name": name, "rows": rows} for name, rows in counts.items()]
            yield msgspec.json.encode({**header, "exported_at": taken_at, "tables": tables}) + b"\n"
            for table in exported_tables():
                prefix = b'{"table":' + msgspec.json.encode(str(table.name)) + b',"row":'
                async for chunk in snapshot.chunks(table):
                    yield b"".join(prefix + line + b"}\n" for line in chunk.splitlines())
