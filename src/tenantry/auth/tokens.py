"""The personal access token format.

`tnt_` + 43 base62 characters (256 random bits) + 6 base62 characters of CRC32 over the random
part, the scheme GitHub uses. The checksum lets a typo or a forged token be refused without a
database call, and the prefix lets secret scanners recognise a leaked token. Only
HMAC-SHA-256(pepper, token) is stored: a fast keyed hash is right for 256-bit random secrets,
where a slow password hash (argon2id) would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

TENANT_TOKEN_PREFIX = "tnt_"  # noqa: S105 - a public type prefix, not a secret
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_SECRET_CHARS = 43  # 62**43 > 2**256
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(TENANT_TOKEN_PREFIX) + _SECRET_CHARS + _CHECKSUM_CHARS
DISPLAY_PREFIX_LENGTH = len(TENANT_TOKEN_PREFIX) + 4


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    if value:
        raise ValueError("value does not fit")
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: the clear text (shown once) and what may be stored."""

    token: str
    digest: bytes
    display_prefix: str
    last_four: str


def generate_token(pepper: str) -> IssuedToken:
    body = _base62(secrets.randbits(256), _SECRET_CHARS)
    token = f"{TENANT_TOKEN_PREFIX}{body}{_checksum(body)}"
    return IssuedToken(
        token=token,
        digest=token_digest(token, pepper),
        display_prefix=token[:DISPLAY_PREFIX_LENGTH],
        last_four=token[-4:],
    )


def is_well_formed(token: str) -> bool:
    """Prefix, length, alphabet and checksum; constant work, no database."""
    if len(token) != TOKEN_LENGTH or not token.startswith(TENANT_TOKEN_PREFIX):
        return False
    rest = token[len(TENANT_TOKEN_PREFIX) :]
    if any(c not in _INDEX for c in rest):
        return False
    body, check = rest[:_SECRET_CHARS], rest[_SECRET_CHARS:]
    return hmac.compare_digest(_checksum(body), check)


def token_digest(token: str, pepper: str) -> bytes:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).digest()
