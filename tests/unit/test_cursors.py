"""Cursor signing (tenancy/pagination.py): a cursor continues exactly the list it came from."""

from __future__ import annotations

import base64
import uuid

import msgspec
import pytest

from tenantry.tenancy.pagination import InvalidCursor, Position, cursor_key, decode_cursor, encode_cursor

KEY = cursor_key("p" * 40)
BINDING = "products|tenant-a|include_deleted=false|sort=-price_cents"
AFTER = uuid.UUID("0190a8c2-4a7e-7a1b-9c3d-5e6f70819203")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("sort_value", [None, 1999, 12.5, "Widget", "2026-01-15T10:00:00+00:00"])
def test_a_cursor_decodes_to_the_position_it_was_made_from(sort_value: object) -> None:
    cursor = encode_cursor(Position(after=AFTER, key=sort_value), key=KEY, binding=BINDING)
    assert decode_cursor(cursor, key=KEY, binding=BINDING) == Position(after=AFTER, key=sort_value)


def test_a_cursor_is_url_safe_and_carries_no_secret() -> None:
    cursor = encode_cursor(Position(after=AFTER, key="a/b+c"), key=KEY, binding=BINDING)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "p" * 40 not in cursor
    assert "tenant-a" not in base64.urlsafe_b64decode(cursor.split(".")[0] + "==").decode()


@pytest.mark.parametrize(
    "binding",
    [
        "products|tenant-b|include_deleted=false|sort=-price_cents",  # another workspace
        "products|tenant-a|include_deleted=true|sort=-price_cents",  # another filter
        "products|tenant-a|include_deleted=false|sort=price_cents",  # another order
        "orders|tenant-a|include_deleted=false|sort=-price_cents",  # another list
    ],
)
def test_a_cursor_is_refused_for_any_other_list(binding: str) -> None:
    cursor = encode_cursor(Position(after=AFTER, key=10), key=KEY, binding=BINDING)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, binding=binding)


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    """The key comes from the pepper: another deployment's cursors are worthless here."""
    assert cursor_key("q" * 40) != KEY
    cursor = encode_cursor(Position(after=AFTER), key=cursor_key("q" * 40), binding=BINDING)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, binding=BINDING)


def test_a_cursor_changed_by_hand_is_refused() -> None:
    cursor = encode_cursor(Position(after=AFTER, key=10), key=KEY, binding=BINDING)
    payload, mac = cursor.split(".")
    forged = _b64(msgspec.json.encode({"after": str(uuid.uuid4()), "key": 10}))
    for tampered in (f"{forged}.{mac}", f"{payload}.{_b64(b'0' * 16)}", f"{payload}.{mac[:-2]}"):
        with pytest.raises(InvalidCursor):
            decode_cursor(tampered, key=KEY, binding=BINDING)


@pytest.mark.parametrize("junk", ["", "abc", "not.base64!", "...", "a.b.c", "\u00e9.\u00e9"])
def test_junk_is_an_invalid_cursor_not_a_server_error(junk: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(junk, key=KEY, binding=BINDING)


def test_a_well_signed_payload_of_the_wrong_shape_is_refused() -> None:
    """Signed by us but not a position (a key rotated across versions, say): refused, not a 500."""
    from tenantry.tenancy.pagination import _mac

    payload = msgspec.json.encode({"after": "not a uuid"})
    cursor = f"{_b64(payload)}.{_b64(_mac(KEY, BINDING, payload))}"
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, key=KEY, binding=BINDING)
