"""Brute-force throttle for password checks, per account and per client address.

Counters live in the global `auth_throttle` table (platform role), one row per key, each with a
fixed 15-minute window. An attempt is counted BEFORE the password is verified, in a transaction
of its own that commits at once: concurrent guesses cannot slip past the limit between a check
and a later increment, and the count sticks even though the request then fails. An attempt that
pushes a key past its limit is refused with 429 without any verification. A success undoes its
own count: the account key is reset and the address key goes back down by one.

The account key is built from the same normalised email the user lookup compares with, and it
is counted whether or not the account exists, so the throttle says nothing about which emails
have accounts. The limits are read from this module at call time (tests may lower them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.core.errors import TooManyRequests
from tenantry.tenancy.unit_of_work import UnitOfWork

WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 50

_REFUSED = "Too many failed sign-in attempts; retry after the time in Retry-After."

# The window restarts once it has run out; `blocked_until` marks the window's end once the key
# has reached its limit (the next attempt is refused until then).
_COUNT_ATTEMPT = text(
    """
    INSERT INTO public.auth_throttle AS t (key, window_start, failures, blocked_until)
    VALUES (:key, now(), 1, CASE WHEN :limit <= 1 THEN now() + CAST(:window AS interval) END)
    ON CONFLICT (key) DO UPDATE SET
        window_start = CASE WHEN t.window_start > now() - CAST(:window AS interval)
                            THEN t.window_start ELSE now() END,
        failures = CASE WHEN t.window_start > now() - CAST(:window AS interval)
                        THEN t.failures + 1 ELSE 1 END,
        blocked_until = CASE
            WHEN t.window_start > now() - CAST(:window AS interval)
                THEN CASE WHEN t.failures + 1 >= :limit THEN t.window_start + CAST(:window AS interval) END
            WHEN :limit <= 1 THEN now() + CAST(:window AS interval)
        END
    RETURNING t.failures,
              EXTRACT(EPOCH FROM (t.window_start + CAST(:window AS interval) - now())) AS seconds_left
    """
)
_RESET = text("DELETE FROM public.auth_throttle WHERE key = :key")
_UNCOUNT = text(
    """
    UPDATE public.auth_throttle
       SET failures = greatest(failures - 1, 0),
           blocked_until = CASE WHEN failures - 1 >= :limit THEN blocked_until END
     WHERE key = :key AND window_start > now() - CAST(:window AS interval)
    """
)


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    account: str
    address: str


def normalize_email(email: str) -> str:
    """The one form an email is compared in, for the user lookup and the throttle key alike."""
    return email.lower()


def throttle_keys(email: str, client_address: str) -> ThrottleKeys:
    return ThrottleKeys(account=f"account:{normalize_email(email)}", address=f"address:{client_address}")


class LoginThrottle:
    """Counts password attempts in sessions of its own, apart from the caller's transaction."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    def _limits(self, keys: ThrottleKeys) -> dict[str, int]:
        return {keys.account: ACCOUNT_LIMIT, keys.address: ADDRESS_LIMIT}

    async def admit(self, keys: ThrottleKeys) -> None:
        """Count one attempt on both keys; raise 429 if either key is now past its limit."""
        await self.admit_limits(self._limits(keys), _REFUSED)

    async def admit_limits(self, limits: dict[str, int], refused: str) -> None:
        """Count one attempt on each key; raise 429 (with `refused`) if any is now past its limit."""
        waits: list[float] = []
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            # A fixed key order, so two attempts never wait on each other's rows in a cycle.
            for key, limit in sorted(limits.items()):
                row = (await session.execute(_COUNT_ATTEMPT, {"key": key, "limit": limit, "window": WINDOW})).one()
                if row.failures > limit:
                    waits.append(float(row.seconds_left))
        if waits:
            raise TooManyRequests(refused, retry_after=max(1, math.ceil(max(waits))))

    async def succeeded(self, keys: ThrottleKeys) -> None:
        """The password was right: reset the account and take this attempt off the address."""
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            await session.execute(_RESET, {"key": keys.account})
            await session.execute(_UNCOUNT, {"key": keys.address, "limit": ADDRESS_LIMIT, "window": WINDOW})
