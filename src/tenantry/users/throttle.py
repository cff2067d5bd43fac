"""Brute-force back-off for password checks, per account and per client address prefix.

Nothing is ever locked: each key (an account, an address prefix) gets a few free failures, then
must wait before its next attempt, the wait doubling with each further failure up to a cap
(docs/security.md, "Password guessing", gives the numbers and what an attacker can and cannot do).
An attempt made while its key is waiting is refused with 429 and Retry-After, without any
verification, and is not counted: hammering a waiting key does not make the wait longer.

An attempt is counted BEFORE the password is verified, in a transaction of its own that commits
at once, and only if no key is waiting (one conditional upsert per key, so concurrent guesses
cannot slip past the check between a read and a later increment). A success undoes its own count:
the account key is reset and the prefix key goes back down by one.

So that a stranger's failures cannot keep the owner out, a success also marks its address prefix
as *familiar* for that account (30 days). Attempts from a familiar prefix are counted on a key of
that account and prefix only, never on the account-wide key that strangers fill: an attacker
elsewhere can slow the account for new addresses (at most `ACCOUNT.cap_s` per attempt), not for
the addresses its owner already uses.

Addresses count by prefix (IPv4 /32, IPv6 /64): one host usually holds a whole /64, so counting
per IPv6 address would give it 2^64 fresh counters. The account key is built from the same
normalised email the user lookup compares with, and it is counted whether or not the account
exists, so the back-off says nothing about which emails have accounts.

Every row carries the time after which it means nothing (`expires_at`); each counted attempt and
each success delete a bounded batch of such rows, so the table holds live keys only. The policies
are read from this module at call time (tests may lower them).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.core.errors import TooManyRequests
from tenantry.tenancy.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Backoff:
    """`free` counted attempts wait nothing; the n-th after them waits base_s * 2^n, at most cap_s.

    A key's count is forgotten `forget` after its last counted attempt.
    """

    free: int
    base_s: float
    cap_s: float
    forget: timedelta

    def __post_init__(self) -> None:
        # The row must outlive its longest wait, or a waiting key would be pruned early.
        if self.forget.total_seconds() < self.cap_s or self.free < 1:
            raise ValueError("a back-off must wait at most `forget` and allow at least one attempt")

    def wait_s(self, failures: int) -> float:
        """The wait after the `failures`-th counted attempt (the SQL below computes the same)."""
        if failures < self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(failures - self.free, 30))


# One account, from any prefix that is not familiar to it (strangers share this key).
ACCOUNT = Backoff(free=5, base_s=15, cap_s=300, forget=timedelta(days=1))
# One account from one familiar prefix (only that prefix's own failures count here).
FAMILIAR = Backoff(free=5, base_s=15, cap_s=300, forget=timedelta(days=1))
# One address prefix, whatever the accounts (password spraying).
ADDRESS = Backoff(free=50, base_s=15, cap_s=900, forget=timedelta(days=1))
FAMILIAR_FOR = timedelta(days=30)
PRUNE_BATCH = 100

_REFUSED = "Too many failed sign-in attempts; retry after the time in Retry-After."

# The count the upsert gives the key: 1 again once the old count has been forgotten.
_NEXT = "(CASE WHEN t.expires_at <= now() THEN 1 ELSE t.failures + 1 END)"


def _blocked_until(count: str) -> str:
    return (
        f"CASE WHEN {count} < :free THEN NULL ELSE now() + make_interval("
        f"secs => least(CAST(:cap AS float8), :base * power(2, least({count} - :free, 30)))) END"
    )


# Counts one attempt unless the key is waiting; no row comes back when it is.
_COUNT_ATTEMPT = text(
    f"""
    INSERT INTO public.auth_throttle AS t (key, window_start, failures, blocked_until, expires_at)
    VALUES (:key, now(), 1, {_blocked_until("1")}, now() + CAST(:forget AS interval))
    ON CONFLICT (key) DO UPDATE SET
        window_start = now(),
        failures = {_NEXT},
        blocked_until = {_blocked_until(_NEXT)},
        expires_at = now() + CAST(:forget AS interval)
    WHERE t.blocked_until IS NULL OR t.blocked_until <= now()
    RETURNING t.failures
    """
)
_SECONDS_LEFT = text("SELECT EXTRACT(EPOCH FROM (blocked_until - now())) FROM public.auth_throttle WHERE key = :key")
_IS_FAMILIAR = text("SELECT EXISTS (SELECT FROM public.auth_throttle WHERE key = :key AND expires_at > now())")
_RESET = text("DELETE FROM public.auth_throttle WHERE key = :key")
_UNCOUNT = text(
    """
    UPDATE public.auth_throttle
       SET failures = greatest(failures - 1, 0),
           blocked_until = CASE WHEN failures - 1 >= :free THEN blocked_until END
     WHERE key = :key AND expires_at > now()
    """
)
_REMEMBER = text(
    """
    INSERT INTO public.auth_throttle AS t (key, window_start, failures, blocked_until, expires_at)
    VALUES (:key, now(), 0, NULL, now() + CAST(:keep AS interval))
    ON CONFLICT (key) DO UPDATE SET window_start = now(), expires_at = now() + CAST(:keep AS interval)
    """
)
# Bounded, and never waits on a row another attempt holds: the table keeps live keys only.
_PRUNE = text(
    """
    DELETE FROM public.auth_throttle
     WHERE key IN (SELECT key FROM public.auth_throttle WHERE expires_at <= now()
                    ORDER BY expires_at LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)


def address_prefix(client_address: str) -> str:
    """The prefix an address counts under: an IPv4 address itself, an IPv6 address's /64.

    An IPv4 address mapped into IPv6 counts as the IPv4 address. Anything that is not an address
    (a proxy's placeholder) counts as itself, cut to a bounded length.
    """
    try:
        address = ipaddress.ip_address(client_address.split("%", 1)[0])
    except ValueError:
        return client_address[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{address.ipv4_mapped}/32"
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return f"{address}/32"


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    account: str  # account-wide; the account key for a familiar prefix is `familiar_account`
    address: str
    familiar: str  # marks the prefix familiar to the account
    familiar_account: str


def normalize_email(email: str) -> str:
    """The one form an email is compared in, for the user lookup and the throttle key alike."""
    return email.lower()


def throttle_keys(email: str, client_address: str) -> ThrottleKeys:
    account, prefix = normalize_email(email), address_prefix(client_address)
    return ThrottleKeys(
        account=f"account:{account}",
        address=f"address:{prefix}",
        familiar=f"familiar:{prefix}:{account}",
        familiar_account=f"account-from:{prefix}:{account}",
    )


@dataclass(frozen=True, slots=True)
class Admission:
    """The keys an admitted attempt was counted on, for `succeeded`."""

    account: str
    address: str
    familiar: str


class LoginThrottle:
    """Counts password attempts in sessions of its own, apart from the caller's transaction."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def admit(self, keys: ThrottleKeys) -> Admission:
        """Count one attempt on the account and prefix keys; raise 429 if either is waiting."""
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            familiar = (await session.execute(_IS_FAMILIAR, {"key": keys.familiar})).scalar_one()
        account, policy = (keys.familiar_account, FAMILIAR) if familiar else (keys.account, ACCOUNT)
        await self.admit_policies({account: policy, keys.address: ADDRESS}, _REFUSED)
        return Admission(account=account, address=keys.address, familiar=keys.familiar)

    async def admit_policies(self, policies: dict[str, Backoff], refused: str) -> None:
        """Count one attempt on each key, or on none: raise 429 (with `refused`) if any is waiting."""
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            # A fixed key order, so two attempts never wait on each other's rows in a cycle.
            for key, policy in sorted(policies.items()):
                counted = (await session.execute(_COUNT_ATTEMPT, _parameters(key, policy))).first()
                if counted is None:
                    left = (await session.execute(_SECONDS_LEFT, {"key": key})).scalar_one()
                    # Raised inside the transaction: the keys counted before this one roll back.
                    raise TooManyRequests(refused, retry_after=max(1, math.ceil(float(left))))
            await session.execute(_PRUNE, {"batch": PRUNE_BATCH})

    async def succeeded(self, admission: Admission) -> None:
        """The password was right: reset the account key, uncount the prefix, remember the prefix."""
        async with self.session_factory() as session, UnitOfWork(session).transaction():
            await session.execute(_RESET, {"key": admission.account})
            await session.execute(_UNCOUNT, {"key": admission.address, "free": ADDRESS.free})
            await session.execute(_REMEMBER, {"key": admission.familiar, "keep": FAMILIAR_FOR})
            await session.execute(_PRUNE, {"batch": PRUNE_BATCH})


def _parameters(key: str, policy: Backoff) -> dict[str, object]:
    return {"key": key, "free": policy.free, "base": policy.base_s, "cap": policy.cap_s, "forget": policy.forget}
