"""Request limits per workspace and per token: a rate and a cap on requests in flight.

An ASGI middleware inside the authentication middleware (it needs the verified workspace and
token) and outside everything that touches the database (idempotency keys, the handler). For a
tenant request it asks the store (http/limits_store.py: Redis, shared by every process, or this
process's memory) whether each policy admits it, in one step:

- admitted: the request runs, its answer carries `RateLimit-Policy` and `RateLimit`
  (draft-ietf-httpapi-ratelimit-headers), and its slots are released when it ends, however it
  ends (answer, error, cancellation, client gone);
- refused: 429 problem+json with `Retry-After`, the same two headers and `violated_policies`,
  before any database work; a refusal consumes nothing. It is answered after a delay
  (TENANTRY_LIMIT_REFUSAL_DELAY_MS, 1 s): a client that loops on 429s without waiting then sends
  a request a second per connection instead of hundreds, and refusals cost the neighbours little.
  Capping the delay at the moment the client could retry was tried first: with a fast-refilling
  bucket that moment is milliseconds away, and the bench's flood still got ~200 refusals a
  second through (docs/performance.md, scenario n). Over its limit, a client is slowed down.

The limits are the deployment's defaults (settings: TENANTRY_LIMIT_*) unless the workspace's plan
says otherwise; the plan comes with the principal (auth/resolver.py), so this costs no query.
Admin routes and the public ones (login, invitations, leak reports) are not limited here.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.auth.principal import Principal
from tenantry.core.errors import RateLimited
from tenantry.core.metrics import Metrics
from tenantry.core.plans import PLAN_FIELDS, LimitValues, PlanLimits
from tenantry.http.limits_store import (
    Decision,
    FailoverStore,
    LocalStore,
    Policy,
    RedisStore,
    Store,
    connect_redis,
)
from tenantry.tenancy.pagination import DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    from tenantry.settings import Settings

CONCURRENCY_SUFFIX = "-concurrency"
POLICIES_KEPT = 4096  # policies of this many (token, plan, cost) kept ready; then rebuilt as they come
_LIMIT_WORDS = {"rate": "request rate", "concurrency": "number of requests in flight"}


def default_limits(settings: Settings) -> LimitValues:
    return LimitValues(**{name: getattr(settings, f"limit_{name}") for name in PLAN_FIELDS})


def effective_limits(defaults: LimitValues, plan: PlanLimits | None) -> LimitValues:
    """The plan's limits where it sets one, the defaults elsewhere."""
    if plan is None:
        return defaults
    return LimitValues(
        **{
            name: value if (value := getattr(plan, name)) is not None else getattr(defaults, name)
            for name in PLAN_FIELDS
        }
    )


def request_cost(scope: Scope) -> int:
    """What a request takes from the rate buckets: one request per `DEFAULT_LIMIT` items it asks for.

    A page of 100 products holds a worker for about five times as long as the default page of 20
    (encoding, and the rows themselves), so it counts as five requests: a workspace that spends
    its allowance on its heaviest list gets the same share of the workers as one that lists 20 at
    a time, and its neighbours keep their latency (docs/performance.md, "Noisy neighbours").
    Anything without a valid `limit` costs one; an invalid one is refused by the route anyway.
    """
    query = scope.get("query_string", b"")
    if not query:
        return 1
    cost = 1
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "limit" and value.isdigit() and 1 <= (items := int(value)) <= MAX_LIMIT:
            cost = max(cost, math.ceil(items / DEFAULT_LIMIT))
    return cost


def policy_name(scope: str, limit: str) -> str:
    """The name a client sees in the headers and in `violated_policies`."""
    return scope if limit == "rate" else scope + CONCURRENCY_SUFFIX


class RefusalCounter:
    """Refusals by (scope, limit), e.g. ("workspace", "rate"), counted once per refused limit.

    `count` is the single place a refusal is counted: in this process's tally, and in the
    Prometheus counter `tenantry_rate_limited_total{scope,limit}` when metrics are on.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.metrics = metrics

    def count(self, scope: str, limit: str) -> None:
        self.counts[(scope, limit)] += 1
        if self.metrics is not None:
            self.metrics.count_rate_limited(scope, limit)


class RequestLimits:
    """The app's limits: defaults, the store, and the headers; one per app (`app.state.limits`)."""

    def __init__(
        self,
        defaults: LimitValues,
        store: Store,
        refusal_delay_ms: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.defaults = defaults
        self.store = store
        self.refusal_delay_ms = refusal_delay_ms
        self.sleep = sleep
        self.refusals = RefusalCounter(metrics)
        # Rendered once per distinct set of limits (the defaults, and each plan in use).
        self._policy_headers: dict[LimitValues, bytes] = {}
        self._policies: dict[tuple[Any, ...], tuple[LimitValues, tuple[Policy, Policy]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> RequestLimits:
        store: Store
        if settings.redis_url:
            redis = RedisStore(connect_redis(settings.redis_url), settings.redis_key_prefix)
            store = FailoverStore(redis)
        else:
            store = LocalStore()
        return cls(default_limits(settings), store, settings.limit_refusal_delay_ms, metrics=metrics)

    def policies(self, principal: Principal, cost: int = 1) -> tuple[LimitValues, tuple[Policy, Policy]]:
        # The same token, plan and cost always make the same policies: built once, not per request.
        key = (principal.token_id, principal.tenant_id, principal.plan, cost)
        made = self._policies.get(key)
        if made is None:
            made = self._make_policies(principal, cost)
            if len(self._policies) >= POLICIES_KEPT:
                self._policies.clear()
            self._policies[key] = made
        return made

    def _make_policies(self, principal: Principal, cost: int) -> tuple[LimitValues, tuple[Policy, Policy]]:
        limits = effective_limits(self.defaults, principal.plan)
        tag = "{" + str(principal.tenant_id) + "}"  # one Redis Cluster slot for a workspace's keys
        return limits, (
            Policy(
                "workspace",
                f"{tag}:ws",
                limits.workspace_requests,
                limits.workspace_window_s * 1000,
                limits.workspace_concurrency,
                cost,
            ),
            Policy(
                "token",
                f"{tag}:tok:{principal.token_id}",
                limits.token_requests,
                limits.token_window_s * 1000,
                limits.token_concurrency,
                cost,
            ),
        )

    def policy_header(self, limits: LimitValues) -> bytes:
        rendered = self._policy_headers.get(limits)
        if rendered is None:
            rendered = (
                f'"workspace";q={limits.workspace_requests};w={limits.workspace_window_s}, '
                f'"token";q={limits.token_requests};w={limits.token_window_s}, '
                f'"workspace{CONCURRENCY_SUFFIX}";q={limits.workspace_concurrency};qu="concurrent-requests", '
                f'"token{CONCURRENCY_SUFFIX}";q={limits.token_concurrency};qu="concurrent-requests"'
            ).encode()
            if len(self._policy_headers) < 1024:
                self._policy_headers[limits] = rendered
        return rendered

    @staticmethod
    def state_header(policies: tuple[Policy, ...], decision: Decision, elapsed_ms: int = 0) -> bytes:
        """`RateLimit`: per rate, `r` requests that may start now and `t` seconds until one more may
        (the draft's effective window: within `t` no more than `r`; for a refusal, the same moment
        as Retry-After); then the free slots of each cap. `elapsed_ms` since the decision."""
        rates = []
        for p, s in zip(policies, decision.states, strict=True):
            # The bucket is full after reset_ms and gains one request every interval: the next one
            # comes (requests - 1 - remaining) intervals before it is full.
            next_ms = s.reset_ms - (p.requests - 1 - s.remaining) * p.interval_ms - elapsed_ms
            rates.append(f'"{p.name}";r={s.remaining};t={math.ceil(max(next_ms, 0) / 1000)}')
        caps = [
            f'"{p.name}{CONCURRENCY_SUFFIX}";r={max(p.concurrency - s.in_flight, 0)}'
            for p, s in zip(policies, decision.states, strict=True)
        ]
        return ", ".join(rates + caps).encode()

    async def refuse(self, policies: tuple[Policy, ...], limits: LimitValues, decision: Decision) -> RateLimited:
        """The refusal, after its delay; Retry-After then counts what is left to wait (at least 1 s)."""
        for scope, limit in decision.violations:
            self.refusals.count(scope, limit)
        delay_ms = self.refusal_delay_ms
        if delay_ms > 0:
            await self.sleep(delay_ms / 1000)
        retry_after = max(1, math.ceil((decision.retry_after_ms - delay_ms) / 1000))
        scope, limit = decision.violations[0]
        whose = "this workspace" if scope == "workspace" else "this token"
        return RateLimited(
            f"The {_LIMIT_WORDS[limit]} allowed for {whose} was reached; retry after {retry_after} s.",
            retry_after,
            violated_policies=[policy_name(s, lim) for s, lim in decision.violations],
            headers={
                "RateLimit-Policy": self.policy_header(limits).decode(),
                "RateLimit": self.state_header(policies, decision, delay_ms).decode(),
            },
        )

    async def close(self) -> None:
        await self.store.close()


class RateLimitMiddleware:
    """Admits or refuses each tenant request under its workspace's and its token's limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("user")
        if scope["type"] != ScopeType.HTTP or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        limits: RequestLimits = scope["app"].state.limits
        values, policies = limits.policies(principal, request_cost(scope))
        decision = await limits.store.acquire(policies)
        if not decision.allowed:
            raise await limits.refuse(policies, values, decision)
        extra = [
            (b"ratelimit-policy", limits.policy_header(values)),
            (b"ratelimit", limits.state_header(policies, decision)),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if decision.release is not None:
                decision.release()
