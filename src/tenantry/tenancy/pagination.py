"""Keyset pages, with opaque cursors bound to the list that produced them (docs/03-architecture.md).

Every list of the API goes through `fetch_page` (usually by way of `Repository.page`): one keyset
query of `limit + 1` rows in the list's order, the rows turned into wire items (one by one, or all
at once by an enrichment hook that adds what the rows lack: member emails, order tags, usage
counts), and a cursor for the next page.

A cursor is base64url(JSON position) + "." + a truncated HMAC over the position and its binding.
The binding is derived (`cursor_binding`) from the resource's name, its scope (the tenant, or the
platform for admin lists), the list's filters as a msgspec Struct and its order; nothing formats
it by hand. So a cursor from another workspace, another filter or another sort, or one tampered
with, is refused with a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Integer, Select, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.errors import DomainError
from tenantry.core.schemas import Page
from tenantry.tenancy.unit_of_work import NamedRow, TenantReads

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 20  # the page size of every list that is not asked for another
PLATFORM_SCOPE = "platform"  # the scope of admin lists, which belong to no tenant
_REFUSED = "The cursor is not valid for this list."


class InvalidCursor(DomainError):
    status = 400
    type = "invalid-cursor"
    title = "Invalid cursor"


class PageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the client asked of a list: the page size, where to go on from, and the order."""

    limit: int
    cursor: str | None = None
    sort: str | None = None  # None for the lists that have one fixed order


class NoFilters(msgspec.Struct, frozen=True):
    """The filters of a list that has none."""


class Position(msgspec.Struct, omit_defaults=True):
    after: uuid.UUID
    # The sort column's value of the last row, for lists sorted by something other than id.
    key: str | int | float | None = None


def cursor_key(pepper: str) -> bytes:
    """The key cursors are signed with: derived from the pepper, never the pepper itself."""
    return hmac.new(pepper.encode(), b"tenantry cursors", hashlib.sha256).digest()


@dataclass(frozen=True)
class Ordering:
    """A list's order: one allowlisted column, then id to break ties (ids are unique and stable).

    `name` is the order as the client writes it (`name`, `-price_cents`), and part of the binding.
    """

    column: Any
    id_column: Any
    descending: bool = False
    name: str = "id"

    @classmethod
    def parse(cls, sort: str, columns: dict[str, Any], id_column: Any) -> Ordering:
        """`name` ascending, `-name` descending; `sort` is already one of the route's allowed values."""
        descending = sort.startswith("-")
        return cls(columns[sort.lstrip("-")], id_column, descending, sort)

    @classmethod
    def by_id(cls, id_column: Any, *, descending: bool = False) -> Ordering:
        """Id order alone: with UUIDv7 ids, oldest first (or newest first when descending)."""
        return cls(id_column, id_column, descending, "-id" if descending else "id")

    @property
    def by_id_only(self) -> bool:
        return self.column is self.id_column

    def clauses(self) -> tuple[Any, ...]:
        columns = (self.id_column,) if self.by_id_only else (self.column, self.id_column)
        return tuple(column.desc() if self.descending else column.asc() for column in columns)

    def after(self, after: uuid.UUID, sort_value: Any) -> ColumnElement[bool]:
        """The WHERE clause that continues the list past the last row seen.

        Ties on the sort column are broken by id, so every row has exactly one place in the order
        and rows inserted meanwhile never make a page repeat or skip an older row.
        """
        if self.by_id_only:
            return self.id_column < after if self.descending else self.id_column > after  # type: ignore[no-any-return]
        current, last = tuple_(self.column, self.id_column), tuple_(sort_value, after)
        return current < last if self.descending else current > last

    def position_of(self, row: Any) -> Position:
        after = getattr(row, self.id_column.key)
        if self.by_id_only:
            return Position(after=after)
        return Position(after=after, key=msgspec.to_builtins(getattr(row, self.column.key)))

    def position_in(self, row: NamedRow) -> Position:
        """`position_of` for a row read by column name (`TenantReads`)."""
        after = row[self.id_column.key]
        if self.by_id_only:
            return Position(after=after)
        return Position(after=after, key=msgspec.to_builtins(row[self.column.key]))


def cursor_binding(resource: str, scope: uuid.UUID | str, filters: msgspec.Struct, ordering: Ordering) -> str:
    """What a cursor is valid for: this resource, scope, filter values and order, and nothing else."""
    return msgspec.json.encode([resource, str(scope), ordering.name, filters], order="sorted").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, binding: str, payload: bytes) -> bytes:
    return hmac.new(key, binding.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]


def encode_cursor(position: Position, *, key: bytes, binding: str) -> str:
    payload = msgspec.json.encode(position)
    return f"{_b64(payload)}.{_b64(_mac(key, binding, payload))}"


def decode_cursor(cursor: str, *, key: bytes, binding: str) -> Position:
    """The last row's id and sort value; refuses a cursor made for another list, tenant or query."""
    try:
        payload_text, mac_text = cursor.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise InvalidCursor(_REFUSED) from None
    if not hmac.compare_digest(mac, _mac(key, binding, payload)):
        raise InvalidCursor(_REFUSED)
    try:
        return msgspec.json.decode(payload, type=Position)
    except msgspec.MsgspecError:
        raise InvalidCursor(_REFUSED) from None


def _continued(cursor: str, ordering: Ordering, *, key: bytes, binding: str) -> tuple[uuid.UUID, Any]:
    """The last row's id and sort value from a cursor of this list (else 400)."""
    position = decode_cursor(cursor, key=key, binding=binding)
    value = None
    if not ordering.by_id_only:
        try:
            value = msgspec.convert(position.key, ordering.column.type.python_type, strict=False)
        except msgspec.ValidationError:
            raise InvalidCursor(_REFUSED) from None
    return position.after, value


def keyset_statement(query: Select[Any], ordering: Ordering, *, after: bool) -> Select[Any]:
    """`query` as one page's statement whose values are all parameters, so it can be built once per
    shape (`read_page`): continued past `after_id` (and `after_key`, the sort value) when `after`,
    in the list's order, `page_limit` rows."""
    if after:
        after_id = bindparam("after_id", type_=ordering.id_column.type)
        after_key = None if ordering.by_id_only else bindparam("after_key", type_=ordering.column.type)
        query = query.where(ordering.after(after_id, after_key))  # type: ignore[arg-type]
    return query.order_by(*ordering.clauses()).limit(bindparam("page_limit", type_=Integer))


async def read_page(
    reads: TenantReads,
    statement_for: Callable[[bool], Select[Any]],
    parameters: dict[str, Any],
    *,
    page: PageRequest,
    ordering: Ordering,
    key: bytes,
    binding: str,
    to_wire: Callable[[NamedRow], T],
) -> Page[T]:
    """`fetch_page` for a list whose statements are built once per shape (`keyset_statement`):
    `statement_for(after)` gives the page's statement with or without a cursor, `parameters` its
    filter values. Read in a `tenant_reads` transaction; `to_wire` gets rows by column name."""
    values = {**parameters, "page_limit": page.limit + 1}
    after = bool(page.cursor)  # an empty cursor starts the list, as in `fetch_page`
    if page.cursor:
        values["after_id"], values["after_key"] = _continued(page.cursor, ordering, key=key, binding=binding)
    rows = list(await reads.rows(statement_for(after), values))
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(ordering.position_in(rows[-1]), key=key, binding=binding) if has_more else None
    return Page(data=[to_wire(row) for row in rows], has_more=has_more, next_cursor=next_cursor)


async def fetch_page(
    session: AsyncSession,
    query: Select[Any],
    *,
    page: PageRequest,
    ordering: Ordering,
    key: bytes,
    binding: str,
    to_wire: Callable[[Any], T] | None = None,
    enrich: Callable[[list[Any]], Awaitable[list[T]]] | None = None,
    as_rows: bool = False,
) -> Page[T]:
    """One keyset page of `query` (already scoped to the tenant and filtered), and the next cursor.

    Give `to_wire` (one row to one item) or `enrich` (the page's rows to their items, for lists
    that need one more query per page). `as_rows` is for a query of columns rather than of one
    mapped class (cheaper for a page that only goes to the wire: no identity map, no instance
    state); rows and objects are both read by attribute name.
    """
    if page.cursor:
        after, value = _continued(page.cursor, ordering, key=key, binding=binding)
        query = query.where(ordering.after(after, value))
    statement = query.order_by(*ordering.clauses()).limit(page.limit + 1)
    if as_rows:
        # Columns only, so plain Core: run on the transaction's connection, which the session
        # opened (its hook has set the role and tenant first), skipping the ORM's per-statement
        # execution context, a measurable share of a list request (docs/performance.md).
        result = await (await session.connection()).execute(statement)
    else:
        result = await session.execute(statement)
    rows = list(result if as_rows else result.scalars())
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(ordering.position_of(rows[-1]), key=key, binding=binding) if has_more else None
    if enrich is not None:
        data = await enrich(rows)
    elif to_wire is not None:
        data = [to_wire(row) for row in rows]
    else:
        data = rows
    return Page(data=data, has_more=has_more, next_cursor=next_cursor)
