"""The token directory (policies/token_directory.sql): which workspace a token digest belongs to.

resolve_token() reads it before the tenant is known, then the token with its tenant (on Citus: one
shard, tests/isolation/test_citus_distribution.py). So every path that creates a token must write
the token's entry in the same transaction, and the directory must not become a way to read other
workspaces' digests: a tenant adds its own workspace's entries and reads none.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.tokens import token_digest
from tenantry.core.sqlstate import sqlstate_of
from tenantry.settings import Settings
from tenantry.tenancy.session import set_transaction_context
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import Client, Tenant, as_tenant
from tests.support.http import bearer
from tests.support.members import join


async def _directory(admin_engine: AsyncEngine, workspace_id: uuid.UUID) -> set[bytes]:
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT token_digest FROM public.token_directory WHERE workspace_id = :w"), {"w": workspace_id}
        )
        return {bytes(row[0]) for row in rows}


async def _token_digests(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> set[bytes]:
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT token_digest FROM public.personal_access_tokens WHERE tenant_id = :t"), {"t": tenant_id}
        )
        return {bytes(row[0]) for row in rows}


async def test_every_path_that_creates_a_token_writes_its_directory_entry(
    client: Client,
    admin_engine: AsyncEngine,
    provisioning: ProvisioningService,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    directory_b = await _directory(admin_engine, tenant_b.id)
    created = await client.post("/v1/tokens", json={"name": "api"}, headers=tenant_a.headers)  # the tokens API
    assert created.status_code == 201, created.text
    rotated = await client.post(
        f"/v1/tokens/{created.json()['id']}/rotate", json={"grace_period_seconds": 60}, headers=tenant_a.headers
    )
    assert rotated.status_code == 201, rotated.text
    member = await join(client, tenant_a, "member")  # invitation acceptance
    login = await client.post(
        "/v1/auth/token",
        json={"email": member.email, "password": member.password, "workspace": tenant_a.workspace.slug},
    )
    assert login.status_code in (200, 201), login.text
    operator, _ = await provisioning.issue_token(  # the operator command (tenantry admin)
        tenant_a.id, tenant_a.workspace.owner_membership_id, name="operator"
    )
    issued = [
        tenant_a.token,  # provisioning
        created.json()["token"],
        rotated.json()["token"],
        member.token,
        login.json()["token"],
        operator.token,
    ]

    digests = await _token_digests(admin_engine, tenant_a.id)
    assert {token_digest(token, settings.token_pepper) for token in issued} == digests
    assert await _directory(admin_engine, tenant_a.id) == digests
    for token in issued:  # and each resolves through it
        assert (await client.get("/v1/whoami", headers=bearer(token))).status_code == 200
    assert await _directory(admin_engine, tenant_b.id) == directory_b


async def test_a_tenant_reads_no_directory_entry_and_adds_only_its_own(
    client: Client,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    settings: Settings,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    directory_a = await _directory(admin_engine, tenant_a.id)
    directory_b = await _directory(admin_engine, tenant_b.id)
    digest_b = token_digest(tenant_b.token, settings.token_pepper)
    attempts = {
        "read": ("SELECT token_digest, workspace_id FROM public.token_directory", {}, "42501"),
        "count": ("SELECT count(*) FROM public.token_directory", {}, "42501"),
        "add for B": (
            "INSERT INTO public.token_directory (token_digest, workspace_id) VALUES (:d, :w)",
            {"d": os.urandom(32), "w": tenant_b.id},
            "42501",
        ),
        # B's digest (which a tenant cannot compute): the key refuses to point it at A.
        "claim B's digest": (
            "INSERT INTO public.token_directory (token_digest, workspace_id) VALUES (:d, :w)",
            {"d": digest_b, "w": tenant_a.id},
            "23505",
        ),
        "move": ("UPDATE public.token_directory SET workspace_id = :w", {"w": tenant_a.id}, "42501"),
        "delete": ("DELETE FROM public.token_directory", {}, "42501"),
    }
    for name, (sql, parameters, expected) in attempts.items():
        async with app_engine.connect() as connection:
            await as_tenant(connection, settings, tenant_a.id)
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text(sql), parameters)
            assert sqlstate_of(raised.value) == expected, name

    # The app login role itself, before any switch, reads nothing either.
    async with app_engine.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELECT count(*) FROM public.token_directory"))
        assert sqlstate_of(raised.value) == "42501"

    # The platform role (the purge) sees the workspace column of its one workspace, no digest.
    async with app_engine.connect() as connection:
        await set_transaction_context(connection, role=settings.platform_role, tenant_id=tenant_a.id)
        counted = (await connection.execute(text("SELECT count(*) FROM public.token_directory"))).scalar_one()
        assert counted == len(directory_a)
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELECT token_digest FROM public.token_directory"))
        assert sqlstate_of(raised.value) == "42501"

    assert await _directory(admin_engine, tenant_b.id) == directory_b
    assert await _directory(admin_engine, tenant_a.id) == directory_a
    assert (await client.get("/v1/whoami", headers=tenant_b.headers)).status_code == 200
