"""Repositories: every domain's data access goes through one of these (docs/03-architecture.md).

`TenantRepository` holds the tenant scope of a tenant table's rows: `scoped()` adds the explicit
`tenant_id = :tenant` filter to a query, `get()` reads one row by id (optionally locked), `add()`
stamps the tenant on a new row, and `page()` reads one keyset page with a cursor bound to this
tenant. It is the only place a service's query gets its tenant filter, so no service types one.
RLS is the wall; the explicit filter is what lets the planner (and Citus) go straight to one
tenant's rows. Neither replaces the other.

`Repository` is the same without a tenant, for the global tables (workspaces, users, admin
tokens, the platform audit log).

Both read plain rows too: a query of columns (`columns()`) skips the ORM's per-object bookkeeping,
which is how the hot list of products stays as cheap as a hand-written query.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Row, Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.schemas import Page
from tenantry.tenancy.pagination import (
    PLATFORM_SCOPE,
    Ordering,
    PageRequest,
    cursor_binding,
    fetch_page,
    read_page,
)
from tenantry.tenancy.unit_of_work import NamedRow, TenantReads

M = TypeVar("M")
T = TypeVar("T")
Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")
AnySelect = Select[*tuple[Any, ...]]
AnyRow = Row[*tuple[Any, ...]]

# The row locks the domains take: FOR UPDATE (to change it), FOR SHARE (nobody changes it until
# we commit), FOR KEY SHARE (nobody deletes it or changes its key until we commit).
Lock = Literal["update", "share", "key_share"]


def with_lock(query: Q, lock: Lock | None) -> Q:
    if lock == "update":
        return query.with_for_update()
    if lock == "share":
        return query.with_for_update(read=True)
    if lock == "key_share":
        return query.with_for_update(read=True, key_share=True)
    return query


class Repository(Generic[M]):
    """Data access for one mapped class on one session: a global table's, or (below) a tenant's."""

    model: ClassVar[type[Any]]
    # The list's name in its cursors' binding (e.g. "products").
    resource: ClassVar[str]

    def __init__(self, session: AsyncSession | None) -> None:
        # None: a repository that only builds statements, for `tenant_reads` (tenancy/unit_of_work.py).
        self._session = session

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} was made without a session: it builds statements only")
        return self._session

    @property
    def cursor_scope(self) -> uuid.UUID | str:
        """Whose list a cursor continues: the platform's, for a global table."""
        return PLATFORM_SCOPE

    def scoped(self, query: Q, *sources: Any) -> Q:
        """`query` limited to this repository's scope: a global table has none."""
        return query

    def select(self, *entities: Any) -> Select[Any]:
        """SELECT of the model (or of `entities`), scoped."""
        return self.scoped(select(*(entities or (self.model,))))

    def columns(self) -> Select[Any]:
        """SELECT of the model's columns as plain rows, scoped: for pages that go straight to the wire."""
        return self.scoped(select(*self.model.__table__.columns))

    async def get(self, row_id: uuid.UUID, *, lock: Lock | None = None, where: Iterable[Any] = ()) -> M | None:
        """The row with this id (and `where`), or None; locked as asked until the transaction ends."""
        query = with_lock(self.select().where(self.model.id == row_id, *where), lock)
        return (await self.session.execute(query)).scalar_one_or_none()  # type: ignore[no-any-return]

    async def first(self, query: AnySelect) -> AnyRow | None:
        """The first row of a query this repository built, or None."""
        return (await self.session.execute(query)).first()

    async def scalar(self, query: AnySelect) -> Any:
        return (await self.session.execute(query)).scalar_one_or_none()

    async def scalars(self, query: AnySelect) -> Sequence[Any]:
        return list((await self.session.execute(query)).scalars().all())

    async def add(self, row: M, *, refresh: bool = True) -> M:
        """Insert the row now (violations surface here) and read back what the database filled in."""
        self.session.add(row)
        return await self.save(row, refresh=refresh)

    async def save(self, row: M, *, refresh: bool = True) -> M:
        """Write the session's pending changes now; read the row back unless `refresh=False`."""
        await self.session.flush()
        if refresh:
            await self.session.refresh(row)
        return row

    async def remove(self, row: M) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def page(
        self,
        query: Select[Any],
        *,
        page: PageRequest,
        ordering: Ordering,
        key: bytes,
        filters: msgspec.Struct,
        to_wire: Callable[[Any], T] | None = None,
        enrich: Callable[[list[Any]], Awaitable[list[T]]] | None = None,
        as_rows: bool = False,
    ) -> Page[T]:
        """One keyset page of `query` (built by this repository), its cursor bound to this list.

        The binding is derived from `resource`, the scope, `filters` and the order: a cursor
        continues only the very list it came from.
        """
        return await fetch_page(
            self.session,
            query,
            page=page,
            ordering=ordering,
            key=key,
            binding=cursor_binding(self.resource, self.cursor_scope, filters, ordering),
            to_wire=to_wire,
            enrich=enrich,
            as_rows=as_rows,
        )

    async def read_page(
        self,
        reads: TenantReads,
        statement_for: Callable[[bool], Select[Any]],
        parameters: dict[str, Any],
        *,
        page: PageRequest,
        ordering: Ordering,
        key: bytes,
        filters: msgspec.Struct,
        to_wire: Callable[[NamedRow], T],
    ) -> Page[T]:
        """`page` for statements built once per shape, read in a `tenant_reads` transaction
        (tenancy/pagination.py, `read_page`); the cursor's binding is the same as `page`'s."""
        return await read_page(
            reads,
            statement_for,
            parameters,
            page=page,
            ordering=ordering,
            key=key,
            binding=cursor_binding(self.resource, self.cursor_scope, filters, ordering),
            to_wire=to_wire,
        )


class TenantRepository(Repository[M]):
    """A tenant table's rows, for one tenant: every query it builds carries the tenant filter."""

    def __init__(self, session: AsyncSession | None, tenant_id: uuid.UUID) -> None:
        super().__init__(session)
        self.tenant_id = tenant_id

    @property
    def cursor_scope(self) -> uuid.UUID | str:
        return self.tenant_id

    def tenant_filter(self, source: Any = None) -> ColumnElement[bool]:
        """`source.tenant_id = :tenant`, for the model or another tenant table or model."""
        source = self.model if source is None else source
        column = source.c.tenant_id if isinstance(source, Table) else source.tenant_id
        return column == self.tenant_id  # type: ignore[no-any-return]

    def scoped(self, query: Q, *sources: Any) -> Q:
        """`query` limited to this tenant's rows of the model, or of each of `sources`."""
        return query.where(*(self.tenant_filter(source) for source in (sources or (self.model,))))

    async def add(self, row: M, *, refresh: bool = True) -> M:
        """Insert the row into this tenant, whatever the caller set (the tenant comes from here only)."""
        row.tenant_id = self.tenant_id  # type: ignore[attr-defined]
        return await super().add(row, refresh=refresh)
