"""Every pattern of the API matches whole values: `^...\\Z` in the code, `^...$` in the document.

msgspec and Litestar test a pattern with `re.search`, where `$` also matches before a final
newline; `\\Z` does not (src/tenantry/core/schemas.py). ECMA-262 readers of the OpenAPI document
know no `\\Z`, and their `$` is the end of the string, so the document spells it `$`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.openapi.spec import OpenAPI

from tenantry.app import create_app
from tenantry.catalog.schemas import Currency, Sku
from tenantry.core.schemas import END, DisplayName, Email, LongText, ShortText, published, with_published_patterns
from tenantry.lookups.schemas import Code, Color
from tenantry.settings import load_settings
from tenantry.workspaces.schemas import ExternalId, Slug


@pytest.fixture(scope="module")
def app() -> Litestar:
    settings = load_settings(
        {"DATABASE_URL": "postgresql://u@db.invalid/x", "TENANTRY_TOKEN_PEPPER": "p" * 40, "TENANTRY_APP_PASSWORD": "x"}
    )
    return create_app(settings)


def patterns(node: Any, where: str = "") -> list[tuple[str, str]]:
    """Every (place, pattern) in a document."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append((where, node["pattern"]))
        for key, value in node.items():
            found += patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += patterns(value, f"{where}[{index}]")
    return found


def test_every_pattern_of_the_app_spans_the_whole_value(app: Litestar) -> None:
    """Litestar's own document, before publishing, shows the patterns as the code declares them."""
    declared = patterns(OpenAPI.to_schema(app.openapi_schema))
    assert len(declared) > 20
    for where, pattern in declared:
        assert pattern.startswith("^"), where
        assert pattern.endswith(END), f"{where}: {pattern!r} ends with $, which allows a final newline"


def test_the_document_spells_each_pattern_as_ecma_262_reads_it(app: Litestar) -> None:
    declared = patterns(OpenAPI.to_schema(app.openapi_schema))
    served = dict(patterns(app.openapi_schema.to_schema()))
    for where, mine in declared:
        assert served[where] == published(mine), where
    # What the completion adds (the Idempotency-Key header's pattern) is written as ECMA-262 already.
    assert not [where for where, theirs in served.items() if "\\Z" in theirs]


def test_published_turns_only_the_closing_anchor() -> None:
    assert published(r"^[A-Z]{3}\Z") == "^[A-Z]{3}$"
    assert published("^[A-Z]{3}$") == "^[A-Z]{3}$"
    assert published(r"^\Z|a\Zb") == r"^\Z|a\Zb"


def test_a_message_quotes_the_pattern_as_published() -> None:
    """What a client reads in `errors` is the pattern the document shows."""
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert("EUR\n", Currency)
    assert with_published_patterns(str(refused.value)) == "Expected `str` matching regex '^[A-Z]{3}$'"


# (type, accepted, refused): each refused value differs from an accepted one by what is refused.
TYPES: list[tuple[Any, tuple[str, ...], tuple[str, ...]]] = [
    (Currency, ("EUR",), ("EUR\n", "\nEUR", "eur")),
    (Sku, ("HC-1", "a.b_c-d"), ("HC-1\n", "HC-1\r", "-HC")),
    (Code, ("express", "c-1_2"), ("express\n", "Express")),
    (Color, ("#1E88E5",), ("#1E88E5\n", "1E88E5")),
    (Slug, ("acme", "a-1"), ("acme\n", "acme-")),
    (Email, ("nl@example.test",), ("nl@example.test\n", "nl@example.test\u0085", "nl @example.test")),
    (ShortText, ("Ada Lovelace", "Zoë ✓"), ("Ada\n", "Ada\tLovelace", "Ada\u0085", "5_\u008d\u0092\n", "\x00")),
    (DisplayName, ("", "Ada Lovelace"), ("Ada\n", "Ada\r", "5_\u008d\u0092\n", "\x7f")),
    (ExternalId, ("cus_123",), ("cus_123\n", "cus\u009b123")),
    (LongText, ("", "two\nlines\n", "a\tb"), ("a\r\nb", "a\x00", "a\u0085", "a\x1b[31m")),
]


@pytest.mark.parametrize(("wire_type", "accepted", "refused"), TYPES, ids=[str(t[1][0]) or "empty" for t in TYPES])
def test_constrained_strings_take_whole_values_only(
    wire_type: Any, accepted: tuple[str, ...], refused: tuple[str, ...]
) -> None:
    for value in accepted:
        assert msgspec.convert(value, wire_type) == value
    for value in refused:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(value, wire_type)
