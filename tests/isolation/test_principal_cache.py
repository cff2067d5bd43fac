"""The cache of verified tokens: it saves the database lookup, and it never outlives a revocation.

These clients do NOT wait for notifications before their requests (unlike tests/conftest.py's
`client`): they see the cache's own timing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import tenantry.auth.middleware as middleware_module
from tenantry.app import create_app
from tenantry.auth.cache import EXPIRY_MARGIN_S, AuthChangeListener, PrincipalCache
from tenantry.auth.principal import Principal
from tenantry.auth.tokens import token_digest
from tenantry.settings import Settings
from tests.support import Tenant, serve

Client = AsyncTestClient[Litestar]


def principal(tenant_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        token_id=uuid.uuid4(),
        tenant_id=tenant_id or uuid.uuid4(),
        user_id=uuid.uuid4(),
        membership_id=uuid.uuid4(),
        role="owner",
        token_permissions={"products": "read"},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


DAY = 86_400.0


def listening_cache(**options: object) -> PrincipalCache:
    """A cache as its listener leaves it after subscribing."""
    cache = PrincipalCache(**options)  # type: ignore[arg-type]
    cache.serving = True
    cache.heard_at = time.monotonic()
    return cache


def test_an_entry_lives_at_most_the_ttl_and_never_past_its_token_expiry() -> None:
    clock = Clock()
    cache = listening_cache(ttl_s=60, clock=clock)
    long_lived, short_lived = principal(), principal()
    assert cache.put(b"long", long_lived, 30 * DAY, cache.ticket())
    assert cache.put(b"short", short_lived, 10 + EXPIRY_MARGIN_S, cache.ticket())
    assert not cache.put(b"expired", principal(), EXPIRY_MARGIN_S / 2, cache.ticket())  # inside the margin

    assert cache.get(b"long") is long_lived
    assert cache.get(b"short") is short_lived
    assert cache.get(b"expired") is None
    clock.now += 11
    assert cache.get(b"short") is None  # its token expired: gone, whatever the ttl says
    assert cache.get(b"long") is long_lived
    clock.now += 50
    assert cache.get(b"long") is None


def test_an_answer_fetched_across_an_eviction_is_not_stored() -> None:
    """A lookup that began before a revocation and ended after its eviction holds a stale answer."""
    cache = listening_cache(ttl_s=60)
    tenant = uuid.uuid4()
    ticket = cache.ticket()  # the lookup starts...
    cache.evict_tenant(tenant)  # ...the token is revoked and its workspace evicted (nothing cached yet)...
    assert not cache.put(b"t", principal(tenant), DAY, ticket)  # ...and its answer arrives: refused
    assert cache.get(b"t") is None

    ticket = cache.ticket()
    cache.clear()  # the listener lost and regained its connection meanwhile
    assert not cache.put(b"t", principal(tenant), DAY, ticket)
    assert cache.put(b"t", principal(tenant), DAY, cache.ticket())


def test_eviction_by_workspace_leaves_other_workspaces_alone_and_the_size_is_bounded() -> None:
    cache = listening_cache(ttl_s=60, max_entries=3)
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    cache.put(b"a1", principal(tenant_a), DAY, cache.ticket())
    cache.put(b"a2", principal(tenant_a), DAY, cache.ticket())
    cache.put(b"b1", principal(tenant_b), DAY, cache.ticket())
    cache.evict_tenant(tenant_a)
    assert (cache.get(b"a1"), cache.get(b"a2")) == (None, None)
    assert cache.get(b"b1") is not None

    for n in range(5):
        cache.put(f"x{n}".encode(), principal(tenant_b), DAY, cache.ticket())
    assert len(cache) == 3  # least recently used first out
    assert cache.get(b"b1") is None
    assert cache.get(b"x4") is not None


def test_a_cache_that_is_not_listening_neither_answers_nor_stores() -> None:
    cache = PrincipalCache(ttl_s=60)
    assert not cache.put(b"t", principal(), DAY, cache.ticket())
    cache.serving = True
    cache.heard_at = time.monotonic()
    assert cache.get(b"t") is None
    assert cache.put(b"t", principal(), DAY, cache.ticket())
    cache.serving = False
    assert cache.get(b"t") is None


def test_a_listener_that_has_not_been_heard_from_within_the_lease_stops_the_cache() -> None:
    """A connection that dies without a word (no RST) must not leave the cache serving."""
    cache = listening_cache(ttl_s=60, lease_s=3)
    cache.put(b"t", principal(), DAY, cache.ticket())
    assert cache.get(b"t") is not None
    cache.heard_at = time.monotonic() - 4  # no keepalive answer for 4 s
    assert cache.get(b"t") is None
    assert not cache.put(b"u", principal(), DAY, cache.ticket())


@pytest.fixture
async def raw_client(fresh_app: Litestar) -> AsyncIterator[Client]:
    """A client of an app of its own (a new cache) that does not wait for the cache to hear about changes."""
    async with AsyncTestClient(app=fresh_app, raise_server_exceptions=False) as client:
        # The lifespan (and the listener) runs on the test client's own thread and loop: poll.
        for _ in range(200):
            if fresh_app.state.principal_cache.listening():
                break
            await asyncio.sleep(0.05)
        assert fresh_app.state.principal_cache.listening()
        yield client


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The digests the middleware asked the database about (the real resolver still answers)."""
    calls: list[bytes] = []
    real = middleware_module.resolve_token

    async def counting(engine: AsyncEngine, digest: bytes, fingerprint: str = "") -> object:
        calls.append(digest)
        return await real(engine, digest, fingerprint)

    monkeypatch.setattr(middleware_module, "resolve_token", counting)
    return calls


async def new_token(client: Client, tenant: Tenant) -> tuple[str, str]:
    created = await client.post("/v1/tokens", json={"name": "cached"}, headers=tenant.headers)
    assert created.status_code == 201, created.text
    return created.json()["token"], created.json()["id"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_repeated_token_is_resolved_in_the_database_once(
    raw_client: Client, tenant_a: Tenant, resolver_calls: list[bytes]
) -> None:
    for _ in range(5):
        assert (await raw_client.get("/v1/whoami", headers=tenant_a.headers)).status_code == 200
    assert len(resolver_calls) == 1


async def test_revoking_through_the_api_refuses_the_token_on_the_very_next_request(
    raw_client: Client, tenant_a: Tenant
) -> None:
    token, token_id = await new_token(raw_client, tenant_a)
    assert (await raw_client.get("/v1/products", headers=bearer(token))).status_code == 200  # now cached
    revoked = await raw_client.delete(f"/v1/tokens/{token_id}", headers=tenant_a.headers)
    assert revoked.status_code == 204
    assert (await raw_client.get("/v1/products", headers=bearer(token))).status_code == 401


async def test_deactivating_a_member_through_the_api_refuses_their_token_at_once(
    raw_client: Client, tenant_a: Tenant
) -> None:
    invited = await raw_client.post(
        "/v1/invitations",
        json={"email": f"m-{uuid.uuid4().hex[:8]}@example.com", "role": "member"},
        headers=tenant_a.headers,
    )
    assert invited.status_code == 201, invited.text
    accepted = await raw_client.post("/v1/invitations/accept", json={"token": invited.json()["token"]})
    assert accepted.status_code in (200, 201), accepted.text
    member_token = accepted.json()["token"]["token"]
    member_id = accepted.json()["member"]["id"]
    assert (await raw_client.get("/v1/products", headers=bearer(member_token))).status_code == 200
    deactivated = await raw_client.post(f"/v1/members/{member_id}/deactivate", headers=tenant_a.headers)
    assert deactivated.status_code == 200, deactivated.text
    assert (await raw_client.get("/v1/products", headers=bearer(member_token))).status_code == 401


async def _join_as_member(client: Client, tenant: Tenant) -> tuple[str, str]:
    """A new member of `tenant` (invited and accepted): their token and membership id."""
    invited = await client.post(
        "/v1/invitations",
        json={"email": f"m-{uuid.uuid4().hex[:8]}@example.com", "role": "member"},
        headers=tenant.headers,
    )
    assert invited.status_code == 201, invited.text
    accepted = await client.post("/v1/invitations/accept", json={"token": invited.json()["token"]})
    assert accepted.status_code in (200, 201), accepted.text
    return accepted.json()["token"]["token"], accepted.json()["member"]["id"]


# How another API process makes a cached token fail: each path sends the notification from its own
# transaction on the coordinator (tenancy/auth_changes.py, the revoking SQL functions), which is
# what reaches this process on Citus too, where the tables' triggers run on the workers.
CHANGES_ELSEWHERE = ("revoke", "leak report", "deactivate member", "demote member")


@pytest.mark.parametrize("change", CHANGES_ELSEWHERE)
async def test_a_change_made_by_another_process_reaches_the_cache_by_notification(
    raw_client: Client,
    fresh_app: Litestar,
    tenant_a: Tenant,
    tenant_b: Tenant,
    settings: Settings,
    change: str,
) -> None:
    cache: PrincipalCache = fresh_app.state.principal_cache
    if change in ("deactivate member", "demote member"):
        token, member_id = await _join_as_member(raw_client, tenant_a)
        token_id = ""
    else:
        token, token_id = await new_token(raw_client, tenant_a)
        member_id = ""
    assert (await raw_client.get("/v1/whoami", headers=bearer(token))).status_code == 200
    assert (await raw_client.get("/v1/whoami", headers=tenant_b.headers)).status_code == 200
    digest = token_digest(token, settings.token_pepper)
    assert cache.get(digest) is not None

    # Another API process, with a cache and a listener of its own: nothing here evicts by itself.
    async with serve(create_app(settings)) as other:
        if change == "revoke":
            done = await other.delete(f"/v1/tokens/{token_id}", headers=tenant_a.headers)
        elif change == "leak report":
            done = await other.post("/v1/tokens/leak-report", json={"tokens": [token]})
        elif change == "deactivate member":
            done = await other.post(f"/v1/members/{member_id}/deactivate", headers=tenant_a.headers)
        else:
            done = await other.patch(f"/v1/members/{member_id}", json={"role": "viewer"}, headers=tenant_a.headers)
        assert done.status_code in (200, 202, 204), done.text
    for _ in range(200):  # delivery takes milliseconds; give a loaded machine up to 10 s
        if cache.get(digest) is None:
            break
        await asyncio.sleep(0.05)
    assert cache.get(digest) is None
    assert cache.get(token_digest(tenant_b.token, settings.token_pepper)) is not None  # B's entry stays
    if change == "demote member":  # still a member, now a viewer: reads, cannot write
        assert (await raw_client.get("/v1/products", headers=bearer(token))).status_code == 200
        body = {"name": "x", "price_cents": 1, "currency": "EUR", "sku": f"V-{uuid.uuid4().hex[:8]}"}
        assert (await raw_client.post("/v1/products", json=body, headers=bearer(token))).status_code == 403
    else:
        assert (await raw_client.get("/v1/whoami", headers=bearer(token))).status_code == 401


async def test_a_suspension_by_another_process_takes_effect_once_delivered(
    raw_client: Client, fresh_app: Litestar, admin_engine: AsyncEngine, tenant_a: Tenant
) -> None:
    assert (await raw_client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET status = 'suspended' WHERE id = :id"), {"id": tenant_a.id}
        )
    await fresh_app.state.auth_listener.sync()  # the barrier: every committed change applied
    refused = await raw_client.get("/v1/products", headers=tenant_a.headers)
    assert refused.status_code == 403, refused.text


async def test_while_the_listener_is_deaf_nothing_is_served_from_memory(
    raw_client: Client, fresh_app: Litestar, admin_engine: AsyncEngine, tenant_a: Tenant, settings: Settings
) -> None:
    cache: PrincipalCache = fresh_app.state.principal_cache
    listener = fresh_app.state.auth_listener
    token, token_id = await new_token(raw_client, tenant_a)
    assert (await raw_client.get("/v1/whoami", headers=bearer(token))).status_code == 200
    assert cache.get(token_digest(token, settings.token_pepper)) is not None
    subscriptions = listener.subscriptions

    async with admin_engine.begin() as connection:
        # Cut the listener off, then revoke while it cannot hear: the notification is lost.
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'tenantry-auth-listener' AND datname = current_database()"
            )
        )
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.personal_access_tokens SET revoked_at = now() WHERE id = :id"), {"id": token_id}
        )
    for _ in range(200):  # until the process noticed the loss (it then stops serving) and is back
        await asyncio.sleep(0.05)
        if listener.subscriptions > subscriptions and listener.subscribed.is_set():
            break
    assert listener.subscriptions > subscriptions
    assert (await raw_client.get("/v1/whoami", headers=bearer(token))).status_code == 401
    assert (await raw_client.get("/v1/whoami", headers=tenant_a.headers)).status_code == 200  # and it serves again


async def test_a_lookup_that_straddles_a_revocation_does_not_cache_the_stale_answer(
    fresh_app: Litestar, tenant_a: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's reproduction: the database answers, the token is revoked (and evicted, with
    nothing cached yet), then the old answer arrives. Before tickets it was served for a whole TTL."""
    async with serve(fresh_app) as client:
        for _ in range(200):
            if fresh_app.state.principal_cache.listening():
                break
            await asyncio.sleep(0.05)
        created = await client.post("/v1/tokens", json={"name": "race"}, headers=tenant_a.headers)
        token, token_id = created.json()["token"], created.json()["id"]
        target = token_digest(token, settings.token_pepper)
        answered, release = asyncio.Event(), asyncio.Event()
        real = middleware_module.resolve_token

        async def delayed(engine: AsyncEngine, digest: bytes, fingerprint: str = "") -> object:
            resolution = await real(engine, digest, fingerprint)
            if digest == target and not release.is_set():
                answered.set()
                await release.wait()  # a scheduling delay after the database answered
            return resolution

        monkeypatch.setattr(middleware_module, "resolve_token", delayed)
        in_flight = asyncio.create_task(client.get("/v1/whoami", headers=bearer(token)))
        await asyncio.wait_for(answered.wait(), timeout=10)
        assert (await client.delete(f"/v1/tokens/{token_id}", headers=tenant_a.headers)).status_code == 204
        await fresh_app.state.auth_listener.sync()
        release.set()
        await in_flight  # answered with what it read before the revocation: it was in flight
        later = [(await client.get("/v1/whoami", headers=bearer(token))).status_code for _ in range(3)]
        assert later == [401, 401, 401]


class CancelSwallowingListener(AuthChangeListener):
    """Loses its first cancellation, as asyncio.wait_for could on Python 3.11 when the cancel
    arrived just as the awaited query completed."""

    async def _watch(self) -> None:
        try:
            await super()._watch()
        except asyncio.CancelledError:
            await super()._watch()


async def test_the_listener_stops_even_when_its_cancellation_is_lost(settings: Settings) -> None:
    """`tenantry serve` once hung on SIGTERM with the listener still sending its keepalive: the
    shutdown waited for a task that had lost its cancellation. Stopping must not depend on it."""
    cache = PrincipalCache(ttl_s=60)
    listener = CancelSwallowingListener(settings.auth_listen_dsn, cache, keepalive_s=0.05)
    await listener.start()
    for _ in range(200):
        if cache.listening():
            break
        await asyncio.sleep(0.01)
    assert cache.listening()
    # Not wait_for: cancelling a hung stop() would cancel the task a second time and hide the hang.
    stopping = asyncio.create_task(listener.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert stopping in done, "stop() still waiting for the listener after 10 s"
    assert listener._task is not None
    assert listener._task.done()
    assert not cache.listening()
