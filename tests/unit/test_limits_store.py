"""The arithmetic of the request limits (http/limits_store.py), in memory, on a clock we move."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from tenantry.auth.principal import Principal
from tenantry.core.plans import LimitValues, PlanLimits
from tenantry.http.limits import RequestLimits, effective_limits, request_cost
from tenantry.http.limits_store import LocalStore, Policy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


DEFAULTS = LimitValues(
    workspace_requests=200,
    workspace_window_s=2,
    workspace_concurrency=10,
    token_requests=100,
    token_window_s=2,
    token_concurrency=5,
)


def policy(name: str = "token", requests: int = 3, window_s: int = 3, concurrency: int = 100) -> Policy:
    return Policy(name, f"k:{name}", requests, window_s * 1000, concurrency)


def test_a_full_bucket_admits_its_size_at_once_then_one_per_interval() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    p = policy(requests=3, window_s=3)  # one request per second, three at once
    remaining = [store.decide([p]).states[0].remaining for _ in range(3)]
    assert remaining == [2, 1, 0]
    refused = store.decide([p])
    assert not refused.allowed
    assert refused.violations == (("token", "rate"),)
    assert refused.retry_after_ms == 1000  # the next request fits in one interval
    clock.now += 0.999
    assert not store.decide([p]).allowed
    clock.now += 0.001
    assert store.decide([p]).allowed
    clock.now += 10  # idle: the bucket refills to its size, never beyond
    assert [store.decide([p]).allowed for _ in range(4)] == [True, True, True, False]


def test_a_refusal_consumes_nothing() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    p = policy(requests=1, window_s=1)
    assert store.decide([p]).allowed
    for _ in range(50):
        assert not store.decide([p]).allowed
    clock.now += 1
    assert store.decide([p]).allowed


def test_one_refusing_policy_refuses_without_taking_from_the_other() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    workspace = policy("workspace", requests=10, window_s=10)
    token = policy("token", requests=1, window_s=10)
    assert store.decide([workspace, token]).allowed
    refused = store.decide([workspace, token])
    assert refused.violations == (("token", "rate"),)
    # The workspace bucket gave one request only: nine are left for its other tokens.
    other = policy("token", requests=1, window_s=10)
    other = Policy("token", "k:other", other.requests, other.window_ms, other.concurrency)
    assert store.decide([workspace, other]).states[0].remaining == 8


def test_slots_are_taken_and_given_back_once() -> None:
    store = LocalStore(clock=Clock())
    p = policy(requests=100, concurrency=2)
    first, second = store.decide([p]), store.decide([p])
    assert (first.states[0].in_flight, second.states[0].in_flight) == (1, 2)
    third = store.decide([p])
    assert third.violations == (("token", "concurrency"),)
    assert third.retry_after_ms == 1000
    assert first.release is not None
    first.release()
    first.release()  # a second call must not free another request's slot
    assert store.in_flight("k:token") == 1
    assert store.decide([p]).allowed


def test_the_plan_overrides_only_the_limits_it_sets() -> None:
    assert effective_limits(DEFAULTS, None) is DEFAULTS
    mixed = effective_limits(DEFAULTS, PlanLimits(token_requests=7, workspace_concurrency=1))
    assert (mixed.token_requests, mixed.workspace_concurrency, mixed.workspace_requests) == (7, 1, 200)


@pytest.mark.asyncio
async def test_headers_name_each_policy_as_the_draft_writes_them() -> None:
    defaults = LimitValues(
        workspace_requests=4,
        workspace_window_s=2,
        workspace_concurrency=3,
        token_requests=2,
        token_window_s=1,
        token_concurrency=1,
    )
    limits = RequestLimits(defaults, LocalStore(clock=Clock()))
    principal = Principal(
        token_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        membership_id=uuid.uuid4(),
        role="owner",
        token_permissions={},
    )
    values, policies = limits.policies(principal)
    decision = await limits.store.acquire(policies)
    assert limits.policy_header(values) == (
        b'"workspace";q=4;w=2, "token";q=2;w=1, '
        b'"workspace-concurrency";q=3;qu="concurrent-requests", "token-concurrency";q=1;qu="concurrent-requests"'
    )
    assert limits.state_header(policies, decision) == (
        b'"workspace";r=3;t=1, "token";r=1;t=1, "workspace-concurrency";r=2, "token-concurrency";r=0'
    )
    refused = await limits.store.acquire(policies)
    error = await limits.refuse(policies, values, refused)
    assert error.violated_policies == ["token-concurrency"]
    assert error.retry_after == 1
    assert limits.refusals.counts == {("token", "concurrency"): 1}


@pytest.mark.asyncio
async def test_a_refusal_waits_the_delay_and_retry_after_counts_what_is_left() -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    clock = Clock()
    defaults = LimitValues(
        workspace_requests=100,
        workspace_window_s=1,
        workspace_concurrency=100,
        token_requests=1,
        token_window_s=10,
        token_concurrency=100,
    )
    limits = RequestLimits(defaults, LocalStore(clock=clock), refusal_delay_ms=1000, sleep=sleep)
    principal = Principal(
        token_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        membership_id=uuid.uuid4(),
        role="owner",
        token_permissions={},
    )
    values, policies = limits.policies(principal)
    assert (await limits.store.acquire(policies)).allowed
    refused = await limits.store.acquire(policies)  # the next request fits in 10 s
    error = await limits.refuse(policies, values, refused)
    assert waited == [1.0]
    assert error.retry_after == 9  # what is left to wait once the answer goes out
    assert '"token";r=0;t=9' in error.headers["RateLimit"]  # the same moment as Retry-After
    clock.now += 9.7
    refused = await limits.store.acquire(policies)  # 300 ms to go: still the whole delay, then "1"
    error = await limits.refuse(policies, values, refused)
    assert waited == [1.0, 1.0]
    assert error.retry_after == 1


def test_a_costly_request_takes_its_cost_from_the_bucket() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    bucket = policy(requests=10, window_s=10)  # one request a second, ten at once
    heavy = Policy(bucket.name, bucket.key, bucket.requests, bucket.window_ms, bucket.concurrency, cost=5)
    assert store.decide([heavy]).states[0].remaining == 5
    assert store.decide([heavy]).states[0].remaining == 0
    refused = store.decide([bucket])
    assert not refused.allowed
    clock.now += 4
    assert not store.decide([heavy]).allowed  # four requests back: not enough for a page of five
    assert store.decide([bucket]).allowed  # but enough for a plain one


def test_a_cost_above_the_bucket_is_capped_so_the_request_is_slowed_not_refused_for_good() -> None:
    clock = Clock()
    store = LocalStore(clock=clock)
    tiny = Policy("token", "k:tiny", requests=2, window_ms=2000, concurrency=10, cost=5)
    assert tiny.units == 2
    assert store.decide([tiny]).allowed
    assert not store.decide([tiny]).allowed
    clock.now += 2
    assert store.decide([tiny]).allowed


@pytest.mark.parametrize(
    ("query", "cost"),
    [
        (b"", 1),
        (b"limit=20", 1),
        (b"limit=21", 2),
        (b"limit=100", 5),
        (b"category_id=x&limit=60", 3),
        (b"limit=40&limit=100", 5),  # the largest page asked for counts
        (b"%6Cimit=100", 5),  # an encoded name is still the limit
        (b"limit=101", 1),  # refused by the route (400): costs one
        (b"limit=-5", 1),
        (b"limit=ten", 1),
    ],
)
def test_a_list_costs_one_request_per_default_page(query: bytes, cost: int) -> None:
    assert request_cost({"type": "http", "query_string": query}) == cost  # type: ignore[typeddict-item]


def test_policies_are_kept_per_token_plan_and_cost_and_follow_a_plan_change() -> None:
    limits = RequestLimits(DEFAULTS, LocalStore())
    tenant = uuid.uuid4()
    caller = Principal(
        token_id=uuid.uuid4(),
        tenant_id=tenant,
        user_id=uuid.uuid4(),
        membership_id=uuid.uuid4(),
        role="owner",
        token_permissions={},
    )
    first = limits.policies(caller)
    assert limits.policies(caller) is first  # built once for the same token, plan and cost
    values, (workspace, token) = first
    assert values is DEFAULTS
    assert (workspace.key, token.key) == (f"{{{tenant}}}:ws", f"{{{tenant}}}:tok:{caller.token_id}")
    # A new plan (read with the token after a change) and a costlier request get their own policies.
    upgraded = msgspec.structs.replace(caller, plan=PlanLimits(token_requests=7))
    assert limits.policies(upgraded)[1][1].requests == 7
    assert limits.policies(caller, cost=5)[1][1].cost == 5
    assert limits.policies(caller)[1][1].requests == 100
    # Another token of the workspace shares its bucket key, not the token's.
    other = msgspec.structs.replace(caller, token_id=uuid.uuid4())
    assert limits.policies(other)[1][0].key == workspace.key
    assert limits.policies(other)[1][1].key != token.key
