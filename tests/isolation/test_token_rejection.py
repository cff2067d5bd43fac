"""Revoked, expired, tampered, unknown and malformed tokens all get the same 401."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tenantry.app import create_app
from tenantry.auth.tokens import generate_token
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import TEST_PEPPER, Tenant

Client = AsyncTestClient[Litestar]


async def _answer(client: Client, authorization: str | None) -> tuple[int, bytes, str | None, str | None]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get("/v1/products", headers=headers)
    return (
        response.status_code,
        response.content,
        response.headers.get("www-authenticate"),
        response.headers.get("content-type"),
    )


async def test_every_bad_token_gets_the_identical_401(
    client: Client, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    membership = tenant_a.workspace.owner_membership_id
    revoked, revoked_id = await provisioning.issue_token(tenant_a.id, membership, name="to revoke")
    await provisioning.revoke_token(tenant_a.id, revoked_id)
    expired, _ = await provisioning.issue_token(tenant_a.id, membership, name="expired", lifetime=timedelta(seconds=-1))
    valid = tenant_a.token
    tampered = valid[:-7] + ("A" if valid[-7] != "A" else "B") + valid[-6:]
    unknown = generate_token(TEST_PEPPER).token  # well formed, never stored
    other_pepper = generate_token("another pepper " * 4).token

    assert (await client.get("/v1/products", headers=tenant_a.headers)).status_code == 200
    answers = {
        "revoked": await _answer(client, f"Bearer {revoked.token}"),
        "expired": await _answer(client, f"Bearer {expired.token}"),
        "tampered": await _answer(client, f"Bearer {tampered}"),
        "unknown": await _answer(client, f"Bearer {unknown}"),
        "other pepper": await _answer(client, f"Bearer {other_pepper}"),
        "malformed": await _answer(client, "Bearer not-a-token"),
        "wrong scheme": await _answer(client, f"Basic {valid}"),
        "missing": await _answer(client, None),
    }
    first = answers["revoked"]
    assert first[0] == 401
    assert first[2] is not None
    assert first[2].startswith("Bearer")
    assert first[3] == "application/problem+json"
    for name, answer in answers.items():
        assert answer == first, name


async def test_revocation_is_effective_on_the_next_request(
    client: Client, provisioning: ProvisioningService, tenant_a: Tenant
) -> None:
    issued, token_id = await provisioning.issue_token(tenant_a.id, tenant_a.workspace.owner_membership_id, name="t")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert (await client.get("/v1/products", headers=headers)).status_code == 200
    await provisioning.revoke_token(tenant_a.id, token_id)
    assert (await client.get("/v1/products", headers=headers)).status_code == 401


async def test_malformed_token_is_refused_without_a_database(settings: Settings) -> None:
    """With the database unreachable, a malformed token still gets 401, not 503: no query was made."""
    dead = msgspec.structs.replace(
        settings, app_database_url="postgresql://nobody@127.0.0.1:1/none", db_pool_timeout_s=1.0
    )
    async with AsyncTestClient(app=create_app(dead), raise_server_exceptions=False) as client:
        malformed = await client.get("/v1/products", headers={"Authorization": "Bearer tnt_short"})
        # Right length and prefix, wrong checksum: the full check still comes before the database.
        good = generate_token(TEST_PEPPER).token
        bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
        tampered = await client.get("/v1/products", headers={"Authorization": f"Bearer {bad_checksum}"})
        well_formed = await client.get(
            "/v1/products", headers={"Authorization": f"Bearer {generate_token(TEST_PEPPER).token}"}
        )
    assert malformed.status_code == 401
    assert tampered.status_code == 401
    assert well_formed.status_code == 503
    assert well_formed.headers.get("retry-after")
