"""Token formats: tenant tokens, platform admin tokens and invitation tokens.

`<type>_` + 43 base62 characters (256 random bits) + 6 base62 characters of CRC32 over the
random part, the scheme GitHub uses. The checksum lets a typo or a forged token be refused
without a database call, and the prefix lets secret scanners recognise a leaked token and tells
the three types apart, so a token of one type can never be accepted as another. Only
HMAC-SHA-256(pepper, token) is stored: a fast keyed hash is right for 256-bit random secrets,
where a slow password hash (argon2id) would only add latency to every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

TENANT_TOKEN_PREFIX = "tnt_"  # noqa: S105 - public type prefixes, not secrets
ADMIN_TOKEN_PREFIX = "tna_"  # noqa: S105
INVITATION_TOKEN_PREFIX = "tni_"  # noqa: S105
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_CHARS = 43  # 62**43 > 2**256
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
# ASCII letters and digits only (str.isalnum() would take other scripts'); one C-level match
# instead of a Python loop over the characters, on every authenticated request.
_BASE62 = re.compile(rf"[0-9A-Za-z]{{{_SECRET_CHARS + _CHECKSUM_CHARS}}}")
_PREFIX_LENGTH = 4
TOKEN_LENGTH = _PREFIX_LENGTH + _SECRET_CHARS + _CHECKSUM_CHARS
DISPLAY_PREFIX_LENGTH = _PREFIX_LENGTH + 4


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


def generate_token(pepper: str, prefix: str = TENANT_TOKEN_PREFIX) -> IssuedToken:
    body = _base62(secrets.randbits(256), _SECRET_CHARS)
    token = f"{prefix}{body}{_checksum(body)}"
    return IssuedToken(
        token=token,
        digest=token_digest(token, pepper),
        display_prefix=token[:DISPLAY_PREFIX_LENGTH],
        last_four=token[-4:],
    )


def is_well_formed(token: str, prefix: str = TENANT_TOKEN_PREFIX) -> bool:
    """Prefix, length, alphabet and checksum; constant work, no database."""
    if len(token) != TOKEN_LENGTH or not token.startswith(prefix):
        return False
    rest = token[_PREFIX_LENGTH:]
    if not _BASE62.fullmatch(rest):
        return False
    body, check = rest[:_SECRET_CHARS], rest[_SECRET_CHARS:]
    return hmac.compare_digest(_checksum(body), check)


def token_digest(token: str, pepper: str) -> bytes:
    return hmac.digest(pepper.encode(), token.encode(), "sha256")  # one C call: on every request


def token_fingerprint(token: str) -> str:
    """base64(SHA-256(token)): the form GitHub exposes, so a leaked token can be matched to audit events."""
    return base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()
