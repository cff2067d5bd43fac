"""Wire types shared by every domain: constrained strings and the page envelope."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec

# No NUL, no C0 control except tab and newline, no DEL and no C1 control: PostgreSQL text cannot
# hold NUL, and controls (C1 includes 8-bit terminal escapes) only ever hide things from readers.
_PRINTABLE = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"

# One email shape for every body that carries one (owners, invitations, customers): no spaces, no
# controls, one @ and a dot in the domain. Deliverability is not checked here.
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s\u0000-\u001f\u007f-\u009f]+@[^@\s\u0000-\u001f\u007f-\u009f]+\.[^@\s\u0000-\u001f\u007f-\u009f]+$",
        examples=["ada@example.com"],
    ),
]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
LongText = Annotated[str, msgspec.Meta(max_length=5000, pattern=_PRINTABLE)]

T = TypeVar("T")


def to_wire(row: object, wire_type: type[T]) -> T:
    """A database row as its wire Struct, field by field by name (one mapping for every domain)."""
    return msgspec.convert(row, wire_type, from_attributes=True)


class Page(msgspec.Struct, Generic[T]):
    """One page of a list. `next_cursor` is opaque; pass it back as `cursor` for the next page."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = None
