"""Wire types shared by every domain: constrained strings and the page envelope."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import msgspec

# Every pattern of the API ends with `\Z`, never `$`. msgspec (bodies) and Litestar (query
# parameters) test a pattern with `re.search`, and Python's `$` also matches before a final
# newline: `^[A-Z]{3}$` accepts "EUR\n", so "HC-1\n" would be created beside a live "HC-1".
# `\Z` is the end of the string only. Clients read patterns as ECMA-262, where `\Z` is no anchor
# and `$` is the end of the string, so the OpenAPI document and error messages spell it `$`
# (`published`). tests/unit/test_patterns.py holds every pattern of the app to this rule.
END = r"\Z"

# Names (of products, members, tokens, workspaces...) are shown to people on one line: no control
# character at all. C0 includes NUL, which PostgreSQL text cannot hold, tab and newline; C1
# includes 8-bit terminal escapes (CSI, NEL); controls only ever hide things from readers.
NAME_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*" + END
# Free text (descriptions) may also hold tabs and line feeds, and nothing else of C0 or C1 (no CR).
# What clients are told: docs/05-api-guide.md, Errors ("Text is strict too").
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*" + END

# One email shape for every body that carries one (owners, invitations, customers): no spaces, no
# controls, one @ and a dot in the domain. Deliverability is not checked here.
_EMAIL_PART = r"[^@\s\u0000-\u001f\u007f-\u009f]+"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}{END}",
        examples=["ada@example.com"],
    ),
]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NAME_PATTERN)]
LongText = Annotated[str, msgspec.Meta(max_length=5000, pattern=TEXT_PATTERN)]
# A person's name in a workspace; may be left empty.
DisplayName = Annotated[str, msgspec.Meta(max_length=200, pattern=NAME_PATTERN, examples=["Ada Lovelace"])]


def published(pattern: str) -> str:
    """`pattern` as clients read it (ECMA-262): its closing `\\Z` spelled `$`, the same anchor there."""
    return pattern[: -len(END)] + "$" if pattern.endswith(END) else pattern


# A closing `\Z` as a validation message quotes a failed pattern (its repr: `...\\Z'`).
_QUOTED_END = repr(END)[1:-1] + "'"


def with_published_patterns(message: str) -> str:
    """A validation message (msgspec's, or Litestar's for a parameter) quoting patterns as published."""
    return message.replace(_QUOTED_END, "$'")


T = TypeVar("T")


def to_wire(row: object, wire_type: type[T]) -> T:
    """A database row as its wire Struct, field by field by name (one mapping for every domain)."""
    return msgspec.convert(row, wire_type, from_attributes=True)


S = TypeVar("S", bound=msgspec.Struct)


def from_row(row: Any, wire_type: type[S]) -> S:
    """A row read by column name (`row["id"]`) as its wire Struct, built directly from the columns named like its
    fields: the database typed them already (the same types `to_wire` would check), so nothing is
    converted or validated again. For reads that only go to the wire (tenancy/session.py)."""
    return wire_type(**{name: row[name] for name in wire_type.__struct_fields__})


class Page(msgspec.Struct, Generic[T]):
    """One page of a list. `next_cursor` is opaque; pass it back as `cursor` for the next page."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = None
