"""Verified tenant principals by token digest, so a request need not ask the database who it is.

What is cached is the answer of resolve_token() for one token digest: who the caller is and what
they may do. Never tenant data. An entry lives at most `ttl_s` seconds and never past its token's
expiry (a rotated token's grace end is its expiry), and it is dropped as soon as anything that
resolve_token() reads changes:

- in every process, by PostgreSQL: triggers on tokens, memberships and workspaces NOTIFY the
  workspace id on commit (policies/20_auth_change_notify.sql) and `AuthChangeListener` evicts it;
- in the process that made the change, before its answer leaves: the authentication middleware
  evicts the workspace after a write to the routes that change tokens or members, and everything
  after a write through the admin or public routes, so a client that revokes a token and uses it
  next is refused whatever the notification's timing.

The cache serves only while the listener is subscribed and has heard from PostgreSQL within the
last `LEASE_S` seconds (it asks every `KEEPALIVE_S`): a connection that dies silently stops the
cache within seconds, not at the next TCP timeout. When its connection is lost, every entry is
dropped and each request is resolved in the database again until it is back: a change missed
while deaf can never be served from memory.

An answer is stored only if nothing was evicted while it was being fetched (`ticket()` before the
lookup, `put(..., ticket)` after): a lookup that started before a revocation and finished after
its eviction would otherwise store the stale answer for a whole TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from tenantry.auth.principal import Principal
from tenantry.core.metrics import Metrics

CHANNEL = "auth_changed"
# The database says how many seconds its token has left (by its own clock, so the API's clock
# does not matter); an entry stops this much earlier, for the time the answer took to arrive.
EXPIRY_MARGIN_S = 1.0
KEEPALIVE_S = 1.0
LEASE_S = 3.0

log = logging.getLogger("tenantry.auth.cache")


@dataclass(slots=True)
class _Entry:
    principal: Principal
    valid_until: float


class PrincipalCache:
    """A bounded LRU of principals by token digest, evictable by workspace."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        lease_s: float = LEASE_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.max_entries = max_entries
        self.clock = clock
        self.lease_s = lease_s
        self.serving = False  # set only by the listener, while it is subscribed
        self.heard_at = float("-inf")  # time.monotonic() of the listener's last contact
        self._changes = 0  # bumped by every eviction: see ticket()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_tenant: dict[uuid.UUID, set[bytes]] = {}
        # Uncontended in a server (one event loop); a test client runs the lifespan, and with it
        # the listener's callbacks, on a thread of its own.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def listening(self) -> bool:
        """Subscribed, and heard from PostgreSQL recently enough to trust that nothing was missed."""
        return self.serving and time.monotonic() - self.heard_at <= self.lease_s

    def ticket(self) -> int:
        """Take before looking a token up; `put` refuses the answer if anything was evicted since."""
        return self._changes

    def get(self, digest: bytes) -> Principal | None:
        principal = self._lookup(digest)
        if self.metrics is not None:
            (self.metrics.cache_misses if principal is None else self.metrics.cache_hits).inc()
        return principal

    def _lookup(self, digest: bytes) -> Principal | None:
        if not self.listening():
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.valid_until <= self.clock():
                self._remove(digest)
                return None
            self._entries.move_to_end(digest)
            return entry.principal

    def put(self, digest: bytes, principal: Principal, expires_in_s: float, ticket: int) -> bool:
        """Store an answer fetched after `ticket()`; `expires_in_s` is the token's time left by the
        database's clock. Returns whether it was stored."""
        if not self.listening():
            return False
        lifetime = min(self.ttl_s, expires_in_s - EXPIRY_MARGIN_S)
        if lifetime <= 0:
            return False
        with self._lock:
            if ticket != self._changes:
                return False  # something changed while the answer was on its way: it may be stale
            self._remove(digest)
            self._entries[digest] = _Entry(principal, self.clock() + lifetime)
            self._by_tenant.setdefault(principal.tenant_id, set()).add(digest)
            while len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))
        return True

    def evict_tenant(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            self._changes += 1
            for digest in self._by_tenant.pop(tenant_id, set()):
                self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._changes += 1
            self._entries.clear()
            self._by_tenant.clear()

    def _remove(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            digests = self._by_tenant.get(entry.principal.tenant_id)
            if digests is not None:
                digests.discard(digest)
                if not digests:
                    del self._by_tenant[entry.principal.tenant_id]


class AuthChangeListener:
    """One LISTEN connection per process that keeps a `PrincipalCache` honest (see the module doc)."""

    def __init__(
        self,
        dsn: str,
        cache: PrincipalCache,
        *,
        keepalive_s: float = KEEPALIVE_S,
        retry_s: float = 1.0,
        connect: Callable[..., Any] = asyncpg.connect,
    ) -> None:
        self.dsn = dsn
        self.cache = cache
        self.keepalive_s = keepalive_s
        self.retry_s = retry_s
        self._connect = connect
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.subscribed = asyncio.Event()
        self.subscriptions = 0  # how many times it has (re)subscribed

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="tenantry-auth-listener")

    async def stop(self) -> None:
        # The flag ends the loops even if the cancellation below is lost: on Python 3.11,
        # asyncio.wait_for can swallow a cancel that arrives as its awaitable completes, and a
        # shutdown that waited on the task forever hung `tenantry serve` on SIGTERM.
        self._stopping = True
        self._deafen()
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=self.keepalive_s + 5)
            if not done:
                log.warning("auth change listener did not stop; closing its connection anyway")
        await self._close()

    async def sync(self) -> None:
        """Return once every change committed before this call has been applied to the cache.

        PostgreSQL delivers a listening session's pending notifications before it answers its next
        query, and asyncpg runs the callbacks before the query's result reaches us: one round trip
        on the listening connection is a barrier. Without a connection the cache is not serving.
        """
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            # Called from another thread's loop (a test client runs the app's lifespan in its own).
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.sync(), self._loop))
            return
        connection = self._connection
        if connection is None:
            return
        async with self._lock:
            try:
                await connection.fetchval("SELECT 1")
                self.cache.heard_at = time.monotonic()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
                self._on_lost(connection)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._subscribe()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stay deaf (cache off) and try again
                log.warning("auth change listener lost (%s); resolving every token in the database", exc)
            self._deafen()
            await self._close()
            await asyncio.sleep(self.retry_s)

    async def _subscribe(self) -> None:
        self._lost = asyncio.Event()
        connection = await self._connect(self.dsn, server_settings={"application_name": "tenantry-auth-listener"})
        self._connection = connection
        connection.add_termination_listener(self._on_lost)
        await connection.add_listener(CHANNEL, self._on_change)
        # Changes made while nobody listened are unknown: start empty.
        self.cache.clear()
        self.cache.heard_at = time.monotonic()
        self.cache.serving = True
        self.subscriptions += 1
        self.subscribed.set()

    async def _watch(self) -> None:
        """Wait for the connection to end, renewing the cache's lease with a query every keepalive;
        a silent network drop lets the lease run out (the cache stops serving) and fails the query."""
        # No asyncio.wait_for here: see stop(). A plain sleep and asyncpg's own query timeout.
        while not self._lost.is_set() and not self._stopping:
            await asyncio.sleep(self.keepalive_s)
            if self._lost.is_set() or self._stopping:
                return
            async with self._lock:
                connection = self._connection
                if connection is None:
                    return
                await connection.fetchval("SELECT 1", timeout=self.keepalive_s)
                self.cache.heard_at = time.monotonic()

    def _on_change(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.cache.heard_at = time.monotonic()
        try:
            self.cache.evict_tenant(uuid.UUID(payload))
        except ValueError:
            self.cache.clear()  # not a workspace id: drop everything rather than guess

    def _on_lost(self, _connection: Any) -> None:
        self._deafen()
        self._lost.set()

    def _deafen(self) -> None:
        self.cache.serving = False
        self.cache.clear()
        self.subscribed.clear()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
