"""Opaque keyset cursors, bound to the workspace and to the query that produced them.

A cursor is base64url(JSON) + "." + a truncated HMAC over the payload and its binding, so a
cursor from another workspace, another filter, or tampered by hand is refused with a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.errors import DomainError
from tenantry.core.schemas import Page

T = TypeVar("T")

MAX_LIMIT = 100


class InvalidCursor(DomainError):
    status = 400
    type = "invalid-cursor"
    title = "Invalid cursor"


class _Position(msgspec.Struct, omit_defaults=True):
    after: uuid.UUID
    # The sort column's value of the last row, for lists sorted by something other than id.
    key: str | int | float | None = None


def cursor_key(pepper: str) -> bytes:
    """The key cursors are signed with: derived from the pepper, never the pepper itself."""
    return hmac.new(pepper.encode(), b"tenantry cursors", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, binding: str, payload: bytes) -> bytes:
    return hmac.new(key, binding.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]


def encode_cursor(after: uuid.UUID, *, key: bytes, binding: str, sort_value: Any = None) -> str:
    payload = msgspec.json.encode(_Position(after=after, key=sort_value))
    return f"{_b64(payload)}.{_b64(_mac(key, binding, payload))}"


def decode_cursor(cursor: str, *, key: bytes, binding: str) -> uuid.UUID:
    return decode_position(cursor, key=key, binding=binding)[0]


def decode_position(cursor: str, *, key: bytes, binding: str) -> tuple[uuid.UUID, Any]:
    """The last row's id and sort value; refuses a cursor made for another list, tenant or query."""
    try:
        payload_text, mac_text = cursor.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise InvalidCursor("The cursor is not valid for this list.") from None
    if not hmac.compare_digest(mac, _mac(key, binding, payload)):
        raise InvalidCursor("The cursor is not valid for this list.")
    try:
        position = msgspec.json.decode(payload, type=_Position)
    except msgspec.MsgspecError:
        raise InvalidCursor("The cursor is not valid for this list.") from None
    return position.after, position.key


def keyset_after(
    sort_column: Any, id_column: Any, *, descending: bool, after: uuid.UUID, sort_value: Any
) -> ColumnElement[bool]:
    """The WHERE clause that continues a list sorted by (sort_column, id) past the last row seen.

    Ties on the sort column are broken by id, so every row has exactly one place in the order and
    rows inserted meanwhile never make a page repeat or skip an older row.
    """
    if descending:
        return tuple_(sort_column, id_column) < tuple_(sort_value, after)
    return tuple_(sort_column, id_column) > tuple_(sort_value, after)


@dataclass(frozen=True)
class Ordering:
    """A list's order: one allowlisted column, then id to break ties (ids are unique and stable)."""

    column: Any
    id_column: Any
    descending: bool = False

    @classmethod
    def parse(cls, sort: str, columns: dict[str, Any], id_column: Any) -> Ordering:
        """`name` ascending, `-name` descending; `sort` is already one of the route's allowed values."""
        descending = sort.startswith("-")
        return cls(columns[sort.lstrip("-")], id_column, descending)

    def clauses(self) -> tuple[Any, Any]:
        if self.descending:
            return self.column.desc(), self.id_column.desc()
        return self.column.asc(), self.id_column.asc()


async def fetch_page(
    session: AsyncSession,
    query: Select[Any],
    *,
    ordering: Ordering,
    limit: int,
    cursor: str | None,
    key: bytes,
    binding: str,
    to_wire: Callable[[Any], T],
    as_rows: bool = False,
) -> Page[T]:
    """One keyset page of `query` (already filtered by tenant and filters), and the next cursor.

    `binding` must name the resource, the tenant and every filter and the sort, so a cursor only
    ever continues the exact list it came from. `as_rows` is for a query of columns rather than of
    one mapped class (cheaper for a page that only goes to the wire: no identity map, no instance
    state); rows and objects are both read by attribute name.
    """
    if cursor:
        after, raw_value = decode_position(cursor, key=key, binding=binding)
        python_type = ordering.column.type.python_type
        try:
            value = msgspec.convert(raw_value, python_type, strict=False)
        except msgspec.ValidationError:
            raise InvalidCursor("The cursor is not valid for this list.") from None
        query = query.where(
            keyset_after(
                ordering.column, ordering.id_column, descending=ordering.descending, after=after, sort_value=value
            )
        )
    result = await session.execute(query.order_by(*ordering.clauses()).limit(limit + 1))
    rows = list(result if as_rows else result.scalars())
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more:
        last = rows[-1]
        sort_value = msgspec.to_builtins(getattr(last, ordering.column.key))
        next_cursor = encode_cursor(
            getattr(last, ordering.id_column.key), key=key, binding=binding, sort_value=sort_value
        )
    return Page(data=[to_wire(row) for row in rows], has_more=has_more, next_cursor=next_cursor)
