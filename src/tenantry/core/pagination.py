"""Opaque keyset cursors, bound to the workspace and to the query that produced them.

A cursor is base64url(JSON) + "." + a truncated HMAC over the payload and its binding, so a
cursor from another workspace, another filter, or tampered by hand is refused with a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import msgspec

from tenantry.core.errors import DomainError

MAX_LIMIT = 100


class InvalidCursor(DomainError):
    status = 400
    type = "invalid-cursor"
    title = "Invalid cursor"


class _Position(msgspec.Struct):
    after: uuid.UUID


def cursor_key(pepper: str) -> bytes:
    """The key cursors are signed with: derived from the pepper, never the pepper itself."""
    return hmac.new(pepper.encode(), b"tenantry cursors", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, binding: str, payload: bytes) -> bytes:
    return hmac.new(key, binding.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]


def encode_cursor(after: uuid.UUID, *, key: bytes, binding: str) -> str:
    payload = msgspec.json.encode(_Position(after=after))
    return f"{_b64(payload)}.{_b64(_mac(key, binding, payload))}"


def decode_cursor(cursor: str, *, key: bytes, binding: str) -> uuid.UUID:
    try:
        payload_text, mac_text = cursor.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise InvalidCursor("The cursor is not valid for this list.") from None
    if not hmac.compare_digest(mac, _mac(key, binding, payload)):
        raise InvalidCursor("The cursor is not valid for this list.")
    try:
        return msgspec.json.decode(payload, type=_Position).after
    except msgspec.MsgspecError:
        raise InvalidCursor("The cursor is not valid for this list.") from None
