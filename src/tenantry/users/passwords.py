"""argon2id password hashing, off the event loop.

OWASP's minimum for argon2id is m=19 MiB, t=2, p=1; we use exactly that by default. A hash made
with older parameters is re-hashed transparently on the next successful login. One verification
costs tens to hundreds of milliseconds, which is why it runs in a worker thread and why tokens
(256 random bits) never go through it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
# Verified against when the email is unknown, so both answers cost one argon2id verification.
_DUMMY_HASH = HASHER.hash("tenantry timing equaliser")

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced (parameters changed)


def _verify(stored_hash: str | None, password: str) -> Verification:
    try:
        HASHER.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verification(ok=False)
    if stored_hash is None:
        return Verification(ok=False)
    if HASHER.check_needs_rehash(stored_hash):
        return Verification(ok=True, new_hash=HASHER.hash(password))
    return Verification(ok=True)


async def verify_password(stored_hash: str | None, password: str) -> Verification:
    """Check `password`; with no stored hash, spend the same work and fail."""
    return await asyncio.to_thread(_verify, stored_hash, password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)
