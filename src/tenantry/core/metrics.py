"""Prometheus metrics (prometheus-client), collected per app when TENANTRY_METRICS is on.

One `Metrics` per app, in a registry of its own (tests build many apps in one process). The app
keeps it in `app.state.metrics` (None when metrics are off); what counts reads it from there:

- http/requestlog.py: every request's latency, by method, route template and status;
- db/engine.py: the pool's connections in use, overflow and waiters;
- auth/cache.py: token cache hits and misses;
- db/engine.py: every database error by SQLSTATE class, as SQLAlchemy reports it (whether a
  service turns it into a domain error, like 23505 into 409, or http/problems.py maps it);
- http/problems.py: pool timeouts;
- rate limiting: `count_rate_limited`, e.g.
  ``if (metrics := request.app.state.get("metrics")) is not None: metrics.count_rate_limited("token", "rate")``.

With several worker processes, `tenantry serve` runs prometheus-client's multiprocess mode: each
worker writes its values to files in PROMETHEUS_MULTIPROC_DIR and the exporter sums them, so a
scrape sees every worker, not one at random (tools/serving.py). Gauges are summed over live
workers (`livesum`). Names and labels: docs/06-operations.md, Metrics.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

# API answers take milliseconds: finer buckets at the low end than prometheus-client's defaults.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RATE_LIMIT_SCOPES = ("workspace", "token")
RATE_LIMIT_KINDS = ("rate", "concurrency")


class Metrics:
    """Every metric the service exports, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "tenantry_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and status "
            "(its _count is the number of requests).",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pool_size = Gauge(
            "tenantry_db_pool_size",
            "Configured connections per pool (summed over workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_in_use = Gauge(
            "tenantry_db_pool_connections_in_use",
            "Pooled connections checked out right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_overflow = Gauge(
            "tenantry_db_pool_overflow",
            "Connections open beyond the pool size (up to max overflow).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_waiting = Gauge(
            "tenantry_db_pool_waiting",
            "Callers waiting for a pooled connection (including while a new one is being opened).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_timeouts = Counter(
            "tenantry_db_pool_timeouts",
            "Requests answered 503 because no pooled connection came in time.",
            registry=r,
        )
        self.db_errors = Counter(
            "tenantry_db_errors",
            "Errors the database driver raised on the app's engine, by SQLSTATE class (two characters; "
            "'none' when there was no SQLSTATE, e.g. a refused or lost connection).",
            ("sqlstate_class",),
            registry=r,
        )
        cache_lookups = Counter(
            "tenantry_auth_cache_lookups",
            "Token lookups in this process's cache of verified tokens: a miss asks the database.",
            ("result",),
            registry=r,
        )
        self.cache_hits = cache_lookups.labels(result="hit")
        self.cache_misses = cache_lookups.labels(result="miss")
        self.rate_limited = Counter(
            "tenantry_rate_limited",
            "Requests refused with 429 by a rate limit or a concurrency cap.",
            ("scope", "limit"),
            registry=r,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(method, route, str(status)).observe(seconds)

    def count_db_error(self, sqlstate: str | None) -> None:
        self.db_errors.labels(sqlstate[:2] if sqlstate else "none").inc()

    def count_rate_limited(self, scope: str, limit: str) -> None:
        """One 429: `scope` is "workspace" or "token", `limit` is "rate" or "concurrency"."""
        if scope not in RATE_LIMIT_SCOPES or limit not in RATE_LIMIT_KINDS:
            raise ValueError(f"unknown rate limit label: scope={scope!r} limit={limit!r}")
        self.rate_limited.labels(scope, limit).inc()

    def pool_class(self) -> type[AsyncAdaptedQueuePool]:
        """The async queue pool, counting the callers inside its checkout."""
        waiting = self.pool_waiting

        class MeteredPool(AsyncAdaptedQueuePool):
            def _do_get(self) -> Any:
                waiting.inc()
                try:
                    return super()._do_get()
                finally:
                    waiting.dec()

        return MeteredPool

    def watch_engine(self, engine: AsyncEngine) -> None:
        """Count the engine's database errors; keep the pool gauges current on every checkout and checkin."""

        def on_error(context: Any) -> None:
            original = context.original_exception
            code = getattr(original, "sqlstate", None) or getattr(
                getattr(original, "__cause__", None), "sqlstate", None
            )
            self.count_db_error(code if isinstance(code, str) else None)

        event.listen(engine.sync_engine, "handle_error", on_error)
        pool = engine.sync_engine.pool
        if not isinstance(pool, AsyncAdaptedQueuePool):
            return
        self.pool_size.set(pool.size())

        def current() -> AsyncAdaptedQueuePool | None:
            pool = engine.sync_engine.pool  # a disposed engine gets a new pool
            return pool if isinstance(pool, AsyncAdaptedQueuePool) else None

        def on_checkout(*_: Any) -> None:
            if (pool := current()) is not None:
                self.pool_in_use.set(pool.checkedout())
                # QueuePool counts overflow from -pool_size while the pool is not yet full.
                self.pool_overflow.set(max(pool.overflow(), 0))

        def on_checkin(*_: Any) -> None:
            # Fired before the connection is back in the queue: it still counts as checked out,
            # and if the queue is full it is an overflow connection about to be closed.
            if (pool := current()) is not None:
                self.pool_in_use.set(max(pool.checkedout() - 1, 0))
                closing = 1 if pool.checkedin() >= pool.size() else 0
                self.pool_overflow.set(max(pool.overflow() - closing, 0))

        event.listen(engine.sync_engine, "checkout", on_checkout)
        event.listen(engine.sync_engine, "checkin", on_checkin)
