"""Password login: one 401 for every wrong credential, throttling per account and address, rehashing."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.testing import transport as litestar_transport
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.permissions import role_permissions
from tenantry.users import passwords, throttle
from tenantry.users.passwords import HASHER
from tests.support import PASSWORD, Joined, Tenant, join, new_email, workspace_audit

Client = AsyncTestClient[Litestar]
Http = httpx.AsyncClient
LOGIN = "/v1/auth/token"
FromAddress = Callable[..., AbstractAsyncContextManager[Http]]


class _TransportFrom(litestar_transport.TestClientTransport, httpx.AsyncBaseTransport):  # type: ignore[type-arg]
    """The test client's own transport (the app runs on its portal loop), from another address."""

    def __init__(self, client: Client, address: str) -> None:
        super().__init__(client=client, raise_server_exceptions=False)
        self.address = address

    def parse_request(self, request: httpx.Request) -> dict[str, Any]:
        scope = super().parse_request(request)
        scope["client"] = (self.address, 50000)
        return scope


@pytest.fixture
def from_address(client: Client) -> FromAddress:
    """Clients that reach the app from an address of their own, so throttle counters never mix."""

    @asynccontextmanager
    async def open_client(address: str | None = None) -> AsyncIterator[Http]:
        transport = _TransportFrom(client, address or f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as http:  # type: ignore[arg-type]
            yield http

    return open_client


def credentials(member: Joined, tenant: Tenant, **overrides: object) -> dict[str, object]:
    return {"email": member.email, "password": member.password, "workspace": tenant.workspace.slug, **overrides}


async def stored_hash(admin_engine: AsyncEngine, email: str) -> str | None:
    async with admin_engine.connect() as connection:
        return (
            await connection.execute(
                text("SELECT password_hash FROM public.users WHERE lower(email) = lower(:e)"), {"e": email}
            )
        ).scalar_one()


async def throttle_row(admin_engine: AsyncEngine, key: str) -> dict[str, object] | None:
    async with admin_engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM public.auth_throttle WHERE key = :k"), {"k": key})).first()
    return dict(row._mapping) if row else None


# -- success ----------------------------------------------------------------------------------


async def test_password_login_issues_a_short_lived_token_with_the_role_permissions(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    member = await join(client, tenant_a, "admin")
    async with from_address() as http:
        response = await http.post(LOGIN, json=credentials(member, tenant_a, email=member.email.upper()))
    assert response.status_code == 201, response.text
    issued = response.json()
    assert set(issued) == {"token", "token_id", "expires_at", "permissions"}
    assert issued["token"].startswith("tnt_")
    assert issued["permissions"] == role_permissions("admin")
    lifetime = datetime.fromisoformat(issued["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=7, minutes=59) < lifetime <= timedelta(hours=8)

    me = await client.get("/v1/members/me", headers={"Authorization": f"Bearer {issued['token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == member.id

    events = [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "auth.token_issued"]
    assert len(events) == 1
    assert events[0]["target_id"] == issued["token_id"]
    assert str(events[0]["actor_member_id"]) == member.id
    assert events[0]["actor_type"] == "member"
    assert events[0]["details"]["method"] == "password"


async def test_login_token_name_and_lifetime_can_be_chosen_within_bounds(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    member = await join(client, tenant_a)
    async with from_address() as http:
        for seconds in (59, 86401, 0):
            refused = await http.post(LOGIN, json=credentials(member, tenant_a, expires_in_seconds=seconds))
            assert refused.status_code == 422, seconds
        ok = await http.post(LOGIN, json=credentials(member, tenant_a, expires_in_seconds=60, name="ci job"))
    assert ok.status_code == 201
    lifetime = datetime.fromisoformat(ok.json()["expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=50) < lifetime <= timedelta(seconds=60)
    async with admin_engine.connect() as connection:
        name = (
            await connection.execute(
                text("SELECT name FROM public.personal_access_tokens WHERE id = :id"),
                {"id": uuid.UUID(ok.json()["token_id"])},
            )
        ).scalar_one()
    assert name == "ci job"


# -- every wrong credential looks the same ----------------------------------------------------


async def wrong_credentials(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant
) -> dict[str, dict[str, object]]:
    """One login body per kind of wrong credential, all for workspace A's slug or members."""
    member = await join(client, tenant_a)
    inactive = await join(client, tenant_a)
    await client.post(f"/v1/members/{inactive.id}/deactivate", headers=tenant_a.headers)
    async with admin_engine.connect() as connection:
        passwordless = (  # provisioned owners authenticate with tokens only
            await connection.execute(
                text("SELECT email FROM public.users WHERE id = :id"), {"id": tenant_a.workspace.owner_user_id}
            )
        ).scalar_one()
    return {
        "unknown email": credentials(member, tenant_a, email=new_email("nobody")),
        "wrong password": credentials(member, tenant_a, password="not the password at all"),
        "no password set": credentials(member, tenant_a, email=passwordless, password=PASSWORD),
        "not a member": credentials(member, tenant_b),
        "inactive member": credentials(inactive, tenant_a),
        "unknown workspace": credentials(member, tenant_a, workspace="no-such-workspace"),
    }


async def test_every_kind_of_wrong_credential_gets_the_same_401(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant, from_address: FromAddress
) -> None:
    attempts = await wrong_credentials(client, admin_engine, tenant_a, tenant_b)
    answers = {}
    async with from_address() as http:
        for kind, body in attempts.items():
            response = await http.post(LOGIN, json=body)
            answers[kind] = (response.status_code, response.content, response.headers.get("www-authenticate"))

    first = answers["unknown email"]
    assert first[0] == 401
    assert b"/invalid-credentials" in first[1]
    assert all(answer == first for answer in answers.values()), answers
    assert not [e for e in await workspace_audit(admin_engine, tenant_a.id) if e["action"] == "auth.token_issued"]


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2id verification the app runs, counted; each still runs, with the same parameters."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append("verify")
            return super().verify(hash, password)

    counting = CountingHasher.from_parameters(HASHER._parameters)
    monkeypatch.setattr(passwords, "HASHER", counting)
    return calls


async def test_every_kind_of_wrong_credential_costs_exactly_one_verification(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    tenant_b: Tenant,
    from_address: FromAddress,
    verifications: list[str],
) -> None:
    """The same work whatever is missing, so the answer time does not tell which it was."""
    attempts = await wrong_credentials(client, admin_engine, tenant_a, tenant_b)
    counts = {}
    async with from_address() as http:
        for kind, body in attempts.items():
            verifications.clear()
            assert (await http.post(LOGIN, json=body)).status_code == 401
            counts[kind] = len(verifications)
    assert counts == dict.fromkeys(attempts, 1)


async def test_suspended_workspace_with_right_credentials_answers_like_the_middleware(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    member = await join(client, tenant_a)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.workspaces SET status = 'suspended' WHERE id = :id"), {"id": tenant_a.id}
        )
    middleware = await client.get("/v1/products", headers=member.headers)
    async with from_address() as http:
        right = await http.post(LOGIN, json=credentials(member, tenant_a))
        wrong = await http.post(LOGIN, json=credentials(member, tenant_a, password="wrong password here"))
    assert middleware.status_code == 403
    assert (right.status_code, right.content) == (middleware.status_code, middleware.content)
    assert wrong.status_code == 401
    async with admin_engine.connect() as connection:
        tokens = (
            await connection.execute(
                text("SELECT count(*) FROM public.personal_access_tokens WHERE membership_id = :m"),
                {"m": uuid.UUID(member.id)},
            )
        ).scalar_one()
    assert tokens == 1  # only the invitation's token: none was issued


# -- throttling -------------------------------------------------------------------------------


REAL_POLICIES = (throttle.ACCOUNT, throttle.FAMILIAR, throttle.ADDRESS)


@pytest.fixture(autouse=True)
def waits_outlast_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first wait of a minute instead of a second, so a slow verification never outlasts it."""
    for name in ("ACCOUNT", "FAMILIAR", "ADDRESS"):
        monkeypatch.setattr(throttle, name, dataclasses.replace(getattr(throttle, name), base_s=60))


def test_the_policies_documented_in_security_md() -> None:
    account, familiar, address = REAL_POLICIES
    assert account == familiar
    assert (account.free, account.base_s, account.cap_s) == (5, 15, 300)
    assert [account.wait_s(n) for n in range(4, 11)] == [0, 15, 30, 60, 120, 240, 300]
    assert (address.free, address.base_s, address.cap_s) == (50, 15, 900)
    assert [address.wait_s(n) for n in range(49, 57)] == [0, 15, 30, 60, 120, 240, 480, 900]
    assert account.forget == address.forget == timedelta(days=1)
    assert throttle.FAMILIAR_FOR.days == 30


async def expire_wait(admin_engine: AsyncEngine, key: str) -> None:
    """Stand in for waiting out a key's Retry-After (tests never sleep)."""
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.auth_throttle SET blocked_until = now() - interval '1 second' WHERE key = :k"),
            {"k": key},
        )


def wrong(member: Joined, tenant: Tenant) -> dict[str, object]:
    return credentials(member, tenant, password="wrong password here")


async def test_account_backs_off_after_5_failures_even_with_the_right_password(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    from_address: FromAddress,
    verifications: list[str],
) -> None:
    member = await join(client, tenant_a)
    account = f"account:{member.email.lower()}"
    async with from_address() as http:
        for _ in range(throttle.ACCOUNT.free):
            failed = await http.post(LOGIN, json=wrong(member, tenant_a))
            assert failed.status_code == 401
        verifications.clear()
        refused = await http.post(LOGIN, json=credentials(member, tenant_a))
        assert verifications == []  # refused before any password work
    # Another new address changes nothing: the account is what backs off.
    async with from_address() as elsewhere:
        refused_elsewhere = await elsewhere.post(LOGIN, json=credentials(member, tenant_a))

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/too-many-requests")
    assert 0 < int(refused.headers["Retry-After"]) <= throttle.ACCOUNT.base_s
    assert refused_elsewhere.status_code == 429
    row = await throttle_row(admin_engine, account)
    assert row is not None
    assert row["failures"] == throttle.ACCOUNT.free  # refused attempts are not counted

    # Once the wait is over, the right password works and resets the count.
    await expire_wait(admin_engine, account)
    async with from_address() as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    assert await throttle_row(admin_engine, account) is None


async def test_waits_double_with_each_failure_up_to_the_cap(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    """Exponential back-off: each failure after the free ones doubles the wait, never a lock-out."""
    member = await join(client, tenant_a)
    account = f"account:{member.email.lower()}"
    policy = throttle.ACCOUNT
    retry_afters = []
    async with from_address() as http:
        for _ in range(policy.free):
            assert (await http.post(LOGIN, json=wrong(member, tenant_a))).status_code == 401
        for _ in range(12):
            refused = await http.post(LOGIN, json=wrong(member, tenant_a))
            assert refused.status_code == 429
            retry_afters.append(int(refused.headers["Retry-After"]))
            await expire_wait(admin_engine, account)
            assert (await http.post(LOGIN, json=wrong(member, tenant_a))).status_code == 401
    expected = [math.ceil(policy.wait_s(policy.free + n)) for n in range(12)]
    assert expected[:3] == [60, 120, 240]
    assert expected[-1] == policy.cap_s
    # Each Retry-After is the wait set by the failure before it, give or take the second it ran.
    assert all(want - 1 <= got <= want for got, want in zip(retry_afters, expected, strict=True)), retry_afters


async def test_strangers_cannot_keep_the_owner_out(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    """Issue 14: 5 failures used to lock the account for everyone. Now the owner's familiar
    address prefix is not slowed by strangers' failures, and a new address waits at most the cap."""
    member = await join(client, tenant_a)
    home = f"2001:db8:{uuid.uuid4().int % 65000:x}:{uuid.uuid4().int % 65000:x}::10"
    async with from_address(home) as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201

    # Strangers from many addresses fail far more often than the free attempts.
    for n in range(throttle.ACCOUNT.free + 3):
        async with from_address(f"198.51.100.{n}") as stranger:
            assert (await stranger.post(LOGIN, json=wrong(member, tenant_a))).status_code in (401, 429)

    # However long the strangers keep the account-wide key waiting (the cap, here)...
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.auth_throttle SET blocked_until = now() + make_interval(secs => :s) WHERE key = :k"),
            {"s": throttle.ACCOUNT.cap_s, "k": f"account:{member.email.lower()}"},
        )
    # ...the owner at home, even from another address of the same /64, signs in at once.
    async with from_address(home.replace("::10", "::77")) as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    # From a new address the owner waits, at most the cap, then gets in.
    async with from_address() as travelling:
        refused = await travelling.post(LOGIN, json=credentials(member, tenant_a))
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= throttle.ACCOUNT.cap_s
        await expire_wait(admin_engine, f"account:{member.email.lower()}")
        assert (await travelling.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201


async def test_failures_at_a_familiar_prefix_back_off_there_too(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    """Sharing the owner's prefix buys an attacker no free guesses: that key backs off alike."""
    member = await join(client, tenant_a)
    home = f"203.0.113.{uuid.uuid4().int % 250}"
    async with from_address(home) as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
        answers = [(await http.post(LOGIN, json=wrong(member, tenant_a))).status_code for _ in range(6)]
    assert answers == [401] * throttle.FAMILIAR.free + [429]
    assert await throttle_row(admin_engine, f"account:{member.email.lower()}") is None  # strangers' key untouched


async def test_unknown_emails_are_throttled_exactly_like_known_ones(client: Client, from_address: FromAddress) -> None:
    body = {"email": new_email("ghost"), "password": "whatever it is", "workspace": "no-such-workspace"}
    async with from_address() as http:
        answers = [(await http.post(LOGIN, json=body)).status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]


async def test_a_success_resets_the_account_count(client: Client, tenant_a: Tenant, from_address: FromAddress) -> None:
    member = await join(client, tenant_a)
    async with from_address() as http:
        for _ in range(2):
            assert [(await http.post(LOGIN, json=wrong(member, tenant_a))).status_code for _ in range(4)] == [401] * 4
            assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201


async def test_address_backs_off_after_50_failures(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    member = await join(client, tenant_a)
    address = f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"
    async with from_address(address) as http:
        for _ in range(throttle.ADDRESS.free):
            body = {"email": new_email("spray"), "password": "password123456", "workspace": tenant_a.workspace.slug}
            assert (await http.post(LOGIN, json=body)).status_code == 401
        refused = await http.post(LOGIN, json=credentials(member, tenant_a))
    assert throttle.ADDRESS.free == 50
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= throttle.ADDRESS.base_s
    async with from_address() as elsewhere:
        assert (await elsewhere.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    row = await throttle_row(admin_engine, f"address:{address}")
    assert row is not None
    assert row["failures"] == throttle.ADDRESS.free


async def test_an_ipv6_host_counts_as_its_whole_slash_64(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    from_address: FromAddress,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14: the address throttle counted per IP, so a host rotating through its /64 evaded it."""
    monkeypatch.setattr(throttle, "ADDRESS", dataclasses.replace(throttle.ADDRESS, free=3))
    member = await join(client, tenant_a)
    net = f"2001:db8:{uuid.uuid4().int % 65000:x}:{uuid.uuid4().int % 65000:x}"
    answers = []
    for host in range(1, 5):  # a fresh address of the same /64 for every attempt
        async with from_address(f"{net}:{host:x}::{host:x}") as http:
            body = {"email": new_email("spray"), "password": "password123456", "workspace": tenant_a.workspace.slug}
            answers.append((await http.post(LOGIN, json=body)).status_code)
    assert answers == [401, 401, 401, 429]
    row = await throttle_row(admin_engine, f"address:{net}::/64")
    assert row is not None
    assert row["failures"] == 3
    # The next /64 is another prefix; an IPv4 address counts alone (/32).
    async with from_address(f"{net[:-1]}{(int(net[-1], 16) + 1) % 16:x}::1") as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    assert throttle.address_prefix("192.0.2.7") == "192.0.2.7/32"
    assert throttle.address_prefix("::ffff:192.0.2.7") == "192.0.2.7/32"
    assert throttle.address_prefix("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


async def test_expired_throttle_rows_are_pruned(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    """Issue 14: rows were never deleted. Each counted attempt now deletes a bounded batch of
    expired rows, and leaves live ones alone."""
    stale = [f"address:prune-test-{uuid.uuid4().hex}" for _ in range(3)]
    live = f"address:prune-test-{uuid.uuid4().hex}"
    async with admin_engine.begin() as connection:
        for key in stale:
            await connection.execute(
                text(
                    "INSERT INTO public.auth_throttle (key, window_start, failures, expires_at) "
                    "VALUES (:k, now() - interval '2 days', 7, now() - interval '1 day')"
                ),
                {"k": key},
            )
        await connection.execute(
            text(
                "INSERT INTO public.auth_throttle (key, window_start, failures, expires_at) "
                "VALUES (:k, now(), 7, now() + interval '1 day')"
            ),
            {"k": live},
        )
    member = await join(client, tenant_a)
    async with from_address() as http:
        assert (await http.post(LOGIN, json=wrong(member, tenant_a))).status_code == 401
    for key in stale:
        assert await throttle_row(admin_engine, key) is None
    assert await throttle_row(admin_engine, live) is not None
    async with admin_engine.connect() as connection:
        expired = (
            await connection.execute(text("SELECT count(*) FROM public.auth_throttle WHERE expires_at <= now()"))
        ).scalar_one()
    assert expired == 0


async def test_accept_is_no_password_oracle(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, tenant_b: Tenant, from_address: FromAddress
) -> None:
    """An inviter holds the invitation token, so accept takes no password at all: nothing to guess."""
    member = await join(client, tenant_a)
    invitation = (
        await client.post("/v1/invitations", json={"email": member.email, "role": "viewer"}, headers=tenant_b.headers)
    ).json()
    async with admin_engine.connect() as connection:
        before = (await connection.execute(text("SELECT key, failures FROM public.auth_throttle ORDER BY key"))).all()
    async with from_address() as http:
        guess = await http.post(
            "/v1/invitations/accept", json={"token": invitation["token"], "password": "a wrong guess here"}
        )
        assert guess.status_code == 422
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    async with admin_engine.connect() as connection:
        after = (await connection.execute(text("SELECT key, failures FROM public.auth_throttle ORDER BY key"))).all()
    assert [row for row in after if "accept" in row[0]] == [row for row in before if "accept" in row[0]]


# -- rehashing --------------------------------------------------------------------------------


async def test_a_hash_with_old_parameters_is_replaced_on_login(
    client: Client, admin_engine: AsyncEngine, tenant_a: Tenant, from_address: FromAddress
) -> None:
    member = await join(client, tenant_a)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE public.users SET password_hash = :h WHERE lower(email) = lower(:e)"),
            {"h": weak, "e": member.email},
        )
    assert HASHER.check_needs_rehash(weak)

    async with from_address() as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201

    current = await stored_hash(admin_engine, member.email)
    assert current is not None
    assert current != weak
    assert not HASHER.check_needs_rehash(current)
    assert HASHER.verify(current, PASSWORD)
    async with from_address() as http:
        assert (await http.post(LOGIN, json=credentials(member, tenant_a))).status_code == 201
    assert await stored_hash(admin_engine, member.email) == current  # no needless rehash
