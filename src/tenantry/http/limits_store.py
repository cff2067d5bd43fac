"""Where the limits are counted: Redis, shared by every process, or this process's memory.

Both stores answer the same question in one step: may this request start, under each policy
(workspace, token), and what is left? A policy is a rate (a bucket of `requests` that refills
evenly over `window_ms`: GCRA, the generic cell rate algorithm) and a cap on requests in flight.
A refusal consumes nothing; an admission takes its cost (one request, more for a large page) from
each bucket and one slot from each cap, and the slots are given back by `release` when the request ends, however it ends.

- `RedisStore`: one Lua script per request, run atomically by Redis on Redis's clock, so every
  process sees the same counts. Slots are members of a sorted set scored by their lease's end,
  so a process that dies mid-request frees its slots after `LEASE_MS`. A release is queued and
  sent in the same pipeline as the next admission (or within `FLUSH_S` when idle): one round
  trip per request.
- `LocalStore`: the same arithmetic in memory, for one process. It is the store without
  TENANTRY_REDIS_URL, and the fallback while Redis does not answer.
- `FailoverStore`: Redis while it answers; on an error or a timeout, the local store for
  `RETRY_S` seconds, then Redis again. Limits keep holding per process; nothing is refused
  because Redis is down (docs/06-operations.md, "Request limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

log = logging.getLogger("tenantry.limits")

# A slot held longer than this is taken as lost (its process died) and freed by Redis.
LEASE_MS = 60_000
# A queued release waits at most this long for an admission to carry it.
FLUSH_S = 0.005
# After Redis failed, requests are counted in memory for this long before Redis is tried again.
RETRY_S = 1.0
# Redis must answer within this long, or the request is counted in memory instead.
REDIS_TIMEOUT_S = 0.25
# The local store forgets idle buckets once it holds this many.
LOCAL_SWEEP_AT = 10_000


@dataclass(frozen=True, slots=True)
class Policy:
    """One scope's limits for one request: `name` is "workspace" or "token", `key` its entity."""

    name: str
    key: str
    requests: int
    window_ms: int
    concurrency: int
    # What this request takes from the bucket, in requests (http/limits.py, `request_cost`); never
    # more than the bucket holds, so a costly request is slowed down, never refused for good.
    cost: int = 1

    @property
    def interval_ms(self) -> float:
        """The bucket refills one request every this many milliseconds."""
        return self.window_ms / self.requests

    @property
    def units(self) -> int:
        return max(1, min(self.cost, self.requests))


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What is left under one policy after the decision."""

    remaining: int  # requests that may start now
    reset_ms: int  # until the bucket is full again
    in_flight: int  # requests running, this one included when admitted


@dataclass(slots=True)
class Decision:
    allowed: bool
    states: tuple[PolicyState, ...]
    # (policy name, "rate" or "concurrency") for every limit that refused; empty when allowed.
    violations: tuple[tuple[str, str], ...] = ()
    retry_after_ms: int = 0
    release: Callable[[], None] | None = None


class Store(Protocol):
    async def acquire(self, policies: Sequence[Policy]) -> Decision: ...

    async def close(self) -> None: ...


def _request_ids() -> Callable[[], str]:
    prefix = f"{uuid.uuid4().hex[:12]}-{os.getpid()}-"
    counter = itertools.count()
    return lambda: prefix + str(next(counter))


# -- in memory -----------------------------------------------------------------------------------


@dataclass
class LocalStore:
    """This process's counts: buckets by key (their theoretical arrival time, GCRA) and slots."""

    clock: Callable[[], float] = time.monotonic
    _tat: dict[str, float] = field(default_factory=dict)
    _busy: dict[str, int] = field(default_factory=dict)

    async def acquire(self, policies: Sequence[Policy]) -> Decision:
        return self.decide(policies)

    def decide(self, policies: Sequence[Policy]) -> Decision:
        now = self.clock() * 1000
        violations: list[tuple[str, str]] = []
        retry_after = 0.0
        new_tats: list[float] = []
        for policy in policies:
            tat = max(self._tat.get(policy.key, now), now)
            new_tat = tat + policy.units * policy.interval_ms
            new_tats.append(new_tat)
            if new_tat - now > policy.window_ms:
                violations.append((policy.name, "rate"))
                retry_after = max(retry_after, new_tat - now - policy.window_ms)
            if self._busy.get(policy.key, 0) >= policy.concurrency:
                violations.append((policy.name, "concurrency"))
                retry_after = max(retry_after, 1000.0)
        if violations:
            states = tuple(
                PolicyState(0, math.ceil(max(self._tat.get(p.key, now), now) - now), self._busy.get(p.key, 0))
                for p in policies
            )
            return Decision(False, states, tuple(violations), math.ceil(retry_after))
        states_list = []
        for policy, new_tat in zip(policies, new_tats, strict=True):
            self._tat[policy.key] = new_tat
            busy = self._busy.get(policy.key, 0) + 1
            self._busy[policy.key] = busy
            remaining = math.floor((policy.window_ms - (new_tat - now)) / policy.interval_ms)
            states_list.append(PolicyState(remaining, math.ceil(new_tat - now), busy))
        if len(self._tat) > LOCAL_SWEEP_AT:
            self._sweep(now)
        keys = [p.key for p in policies]
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            for key in keys:
                left = self._busy.get(key, 0) - 1
                if left > 0:
                    self._busy[key] = left
                else:
                    self._busy.pop(key, None)

        return Decision(True, tuple(states_list), release=release)

    def _sweep(self, now: float) -> None:
        """Forget full buckets: a bucket whose time has passed is the same as no bucket."""
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]

    def in_flight(self, key: str) -> int:
        return self._busy.get(key, 0)

    async def close(self) -> None:
        return None


# -- Redis ---------------------------------------------------------------------------------------

# KEYS: per policy, its bucket key and its slots key. ARGV: lease (ms), this request's slot id,
# then per policy: requests, window (ms), concurrency, the units this request takes. Answers:
# allowed (0/1), retry after (ms), then per policy: rate refused (0/1), cap refused (0/1),
# remaining, reset (ms), in flight.
# Redis runs a script atomically, on its own clock (TIME), the same for every process.
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local lease = tonumber(ARGV[1])
local member = ARGV[2]
local n = #KEYS / 2
local allowed = 1
local retry = 0
local rows = {}
for i = 1, n do
  local requests = tonumber(ARGV[4 * i - 1])
  local window = tonumber(ARGV[4 * i])
  local cap = tonumber(ARGV[4 * i + 1])
  local units = tonumber(ARGV[4 * i + 2])
  local interval = window / requests
  local tat = tonumber(redis.call('GET', KEYS[2 * i - 1]) or now)
  if tat < now then tat = now end
  local new_tat = tat + units * interval
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
  local busy = redis.call('ZCARD', KEYS[2 * i])
  local rate_refused, cap_refused = 0, 0
  if new_tat - now > window then
    rate_refused = 1
    allowed = 0
    retry = math.max(retry, new_tat - now - window)
  end
  if busy >= cap then
    cap_refused = 1
    allowed = 0
    retry = math.max(retry, 1000)
  end
  rows[i] = {tat, new_tat, busy, rate_refused, cap_refused, window, interval}
end
local out = {allowed, math.ceil(retry)}
for i = 1, n do
  local r = rows[i]
  if allowed == 1 then
    redis.call('SET', KEYS[2 * i - 1], string.format('%.3f', r[2]), 'PX', math.ceil(r[2] - now) + 1)
    redis.call('ZADD', KEYS[2 * i], now + lease, member)
    redis.call('PEXPIRE', KEYS[2 * i], lease)
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, math.floor((r[6] - (r[2] - now)) / r[7]))
    table.insert(out, math.ceil(r[2] - now))
    table.insert(out, r[3] + 1)
  else
    table.insert(out, r[4])
    table.insert(out, r[5])
    table.insert(out, 0)
    table.insert(out, math.ceil(r[1] - now))
    table.insert(out, r[3])
  end
end
return out
"""


def connect_redis(url: str, timeout_s: float = REDIS_TIMEOUT_S) -> Redis:
    """A client that fails fast: no retries, short timeouts (the failover store takes over)."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    return client


class RedisStore:
    """The counts in Redis, shared by every process that uses the same server and key prefix."""

    def __init__(self, client: Redis, prefix: str, *, lease_ms: int = LEASE_MS, flush_s: float = FLUSH_S) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ms = lease_ms
        self.flush_s = flush_s
        self._sha: str | None = None
        self._next_id = _request_ids()
        self._pending: list[tuple[str, bytes]] = []  # (slots key, slot id) to remove
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def _keys(self, policies: Sequence[Policy]) -> list[str]:
        keys = []
        for policy in policies:
            keys += [f"{self.prefix}rate:{policy.key}", f"{self.prefix}busy:{policy.key}"]
        return keys

    async def acquire(self, policies: Sequence[Policy]) -> Decision:
        try:
            return await self._acquire(policies)
        except NoScriptError:  # Redis restarted (or flushed its scripts) since SCRIPT LOAD
            self._sha = None
            return await self._acquire(policies)

    async def _acquire(self, policies: Sequence[Policy]) -> Decision:
        member = self._next_id().encode()
        keys = self._keys(policies)
        args: list[Any] = [self.lease_ms, member]
        for policy in policies:
            args += [policy.requests, policy.window_ms, policy.concurrency, policy.units]
        if self._sha is None:
            self._sha = await self.client.script_load(ACQUIRE_SCRIPT)
        pending, self._pending = self._pending, []
        pipe = self.client.pipeline(transaction=False)
        for key, slot in pending:
            pipe.zrem(key, slot)
        pipe.evalsha(self._sha, len(keys), *keys, *args)
        try:
            answers = await pipe.execute(raise_on_error=False)
        except BaseException:
            self._pending = pending + self._pending  # not sent: try them again with the next one
            raise
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return self._decision(policies, keys, member, [int(v) for v in answer])

    def _decision(self, policies: Sequence[Policy], keys: list[str], member: bytes, answer: list[int]) -> Decision:
        allowed, retry_after = bool(answer[0]), answer[1]
        states, violations = [], []
        for i, policy in enumerate(policies):
            rate_refused, cap_refused, remaining, reset_ms, busy = answer[2 + 5 * i : 7 + 5 * i]
            if rate_refused:
                violations.append((policy.name, "rate"))
            if cap_refused:
                violations.append((policy.name, "concurrency"))
            states.append(PolicyState(max(remaining, 0), max(reset_ms, 0), busy))
        if not allowed:
            return Decision(False, tuple(states), tuple(violations), retry_after)
        slots = keys[1::2]
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._queue_release([(key, member) for key in slots])

        return Decision(True, tuple(states), release=release)

    def _queue_release(self, slots: list[tuple[str, bytes]]) -> None:
        """Synchronous, so it is safe in a `finally` even while the request is being cancelled."""
        self._pending.extend(slots)
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (shutting down): the leases free the slots
            self._flush_handle = loop.call_later(self.flush_s, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        if self._pending:
            task = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Send the queued releases now (tests and shutdown; otherwise they ride on admissions)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, slot in pending:
            pipe.zrem(key, slot)
        try:
            await pipe.execute(raise_on_error=False)
        except (TimeoutError, RedisError, OSError) as exc:
            # Redis is away: these slots end with their lease (LEASE_MS) instead.
            log.warning("could not release %d request slots in Redis (%s); their leases will", len(pending), exc)

    async def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        try:
            await self.flush()
        finally:
            await self.client.aclose()


class FailoverStore:
    """Redis while it answers; this process's memory for `retry_s` after it does not."""

    def __init__(self, redis: RedisStore, local: LocalStore | None = None, *, retry_s: float = RETRY_S) -> None:
        self.redis = redis
        self.local = local or LocalStore()
        self.retry_s = retry_s
        self.failed_until = float("-inf")  # time.monotonic() until which Redis is not tried
        self.failovers = 0

    @property
    def using_redis(self) -> bool:
        return time.monotonic() >= self.failed_until

    async def acquire(self, policies: Sequence[Policy]) -> Decision:
        if self.using_redis:
            try:
                return await self.redis.acquire(policies)
            except (TimeoutError, RedisError, OSError) as exc:
                self.failed_until = time.monotonic() + self.retry_s
                self.failovers += 1
                log.warning(
                    "Redis did not answer (%s): limits are counted by this process alone for %g s", exc, self.retry_s
                )
        return self.local.decide(policies)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            await self.redis.close()
