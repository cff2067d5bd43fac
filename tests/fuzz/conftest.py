"""Fixtures for fuzzing the API with Schemathesis: one app, workspace and admin token per module.

Schemathesis drives the app in process (ASGI) from its own event-loop thread and keeps the app's
lifespan running there, so the app here is module-scoped and its lifespan is shut down at the end
of the module, while the database server is still up.

CI runs a bounded, derandomized fuzz. For a deeper local run raise the example count and, to
explore new inputs rather than replay CI's, pick another seed:

    TENANTRY_FUZZ_EXAMPLES=500 TENANTRY_FUZZ_SEED=7 pytest tests/fuzz -s

(-s shows what each run exercised: requests per phase, operations, stateful links, statuses.)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from tenantry.app import create_app
from tenantry.db.engine import create_engine
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisionedWorkspace, ProvisioningService
from tests.fuzz.expectations import PROTECTED_IDS, register_expectations
from tests.support import issue_admin_token, make_settings

# Per operation and phase; the whole folder stays within about three minutes on a 2-core runner.
MAX_EXAMPLES = int(os.environ.get("TENANTRY_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("TENANTRY_FUZZ_SEED", "20260115"))
# Stateful scenarios are chains of up to STATEFUL_STEPS linked calls (create -> get -> update ...).
STATEFUL_EXAMPLES = int(os.environ.get("TENANTRY_FUZZ_STATEFUL_EXAMPLES", str(2 * MAX_EXAMPLES)))
STATEFUL_STEPS = 8
OPENAPI_PATH = "/schema/openapi.json"


@dataclass(frozen=True)
class FuzzTarget:
    """What the fuzzer runs against: the app, a workspace with a few rows, and both kinds of token."""

    app: Litestar
    settings: Settings
    workspace: ProvisionedWorkspace
    admin_token: str
    seeded: dict[str, list[str]]

    @property
    def tenant_token(self) -> str:
        return self.workspace.token


async def _credentials(settings: Settings) -> tuple[ProvisionedWorkspace, str]:
    engine = create_engine(settings.app_url, settings, pool_size=2)
    try:
        slug = f"fuzz-{uuid.uuid4().hex[:12]}"
        workspace = await ProvisioningService(engine, settings).create_workspace(
            slug=slug, name="Fuzz workspace", owner_email=f"owner-{slug}@example.com"
        )
        admin, _ = await issue_admin_token(engine, settings, f"fuzz admin {slug}")
    finally:
        await engine.dispose()
    return workspace, admin.token


def _seed(app: Litestar, token: str) -> dict[str, list[str]]:
    """A few rows of each kind, so requests by id and filters can hit real data, not only 404s."""
    headers = {"Authorization": f"Bearer {token}"}
    seeded: dict[str, list[str]] = {"products": [], "lookups": [], "orders": []}

    def create(client: TestClient[Litestar], path: str, body: dict[str, Any]) -> str:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    with TestClient(app=app, raise_server_exceptions=False) as client:
        category = create(client, "/v1/lookups", {"kind": "product_category", "code": "tools", "name": "Tools"})
        tag = create(client, "/v1/lookups", {"kind": "order_tag", "code": "express", "name": "Express"})
        seeded["lookups"] += [category, tag]
        for index in range(3):
            product = create(
                client,
                "/v1/products",
                {
                    "name": f"Seeded {index}",
                    "price_cents": 100 * (index + 1),
                    "currency": "EUR",
                    "sku": f"SEED-{index}",
                    "category_id": category,
                },
            )
            seeded["products"].append(product)
        order = create(
            client,
            "/v1/orders",
            {
                "product_id": seeded["products"][0],
                "customer_email": "ada@example.com",
                "customer_name": "Ada",
                "quantity": 2,
                "tag_ids": [tag],
            },
        )
        seeded["orders"].append(order)
        client.post(
            "/v1/invitations", json={"email": "grace@example.com", "role": "member"}, headers=headers
        ).raise_for_status()
    return seeded


@pytest.fixture(scope="module")
def fuzz_target(migrated_settings: Settings) -> Iterator[FuzzTarget]:
    # The fuzzer may give its own workspace a tight plan through the admin API; every later request
    # would then wait out the refusal delay (1 s each) and the run its time limit. The 429 is still
    # answered and checked, only at once (the delay is tested in test_request_limits.py).
    migrated_settings = make_settings(migrated_settings.database_url, limit_refusal_delay_ms=0)
    workspace, admin_token = asyncio.run(_credentials(migrated_settings))
    # Seeding runs its own app (and lifespan) so the fuzzed app's lifespan belongs to Schemathesis alone.
    seeded = _seed(create_app(migrated_settings), workspace.token)
    protected = {str(i) for i in (workspace.workspace_id, workspace.owner_membership_id, workspace.token_id)}
    PROTECTED_IDS.update(protected)
    yield FuzzTarget(create_app(migrated_settings), migrated_settings, workspace, admin_token, seeded)
    PROTECTED_IDS.difference_update(protected)
    # Schemathesis would otherwise keep the app (and its connection pool) until interpreter exit.
    shutdown_lifespans()
    # The fuzzer's failed sign-ins and leak reports all come from the test client's one address:
    # forget them, or the later tests of this session meet its throttle (429) instead of theirs.
    asyncio.run(_forget_throttles(migrated_settings))


async def _forget_throttles(settings: Settings) -> None:
    engine = create_async_engine(settings.admin_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM public.auth_throttle"))
    finally:
        await engine.dispose()


def credentials_still_work(target: FuzzTarget) -> bool:
    """Whether the fuzzer's tokens still get a 200: a run whose own token was revoked midway
    would have been testing only the 401 path since then."""
    with TestClient(app=create_app(target.settings), raise_server_exceptions=False) as client:
        tenant = client.get("/v1/whoami", headers={"Authorization": f"Bearer {target.tenant_token}"})
        admin = client.get("/admin/v1/workspaces", headers={"Authorization": f"Bearer {target.admin_token}"})
    return tenant.status_code == 200 and admin.status_code == 200


PHASES = ("examples", "coverage", "fuzzing", "stateful")


def fuzz_config(target: FuzzTarget, phases: Iterable[str]) -> SchemathesisConfig:
    """The one configuration every fuzz test shares: all checks, both modes, fixed seed."""
    enabled = set(phases)
    data: dict[str, Any] = {
        "seed": SEED,
        "generation": {
            "mode": "all",  # positive and negative
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            # No example database: a CI run replays the same inputs each time and writes no files.
            "database": "none",
        },
        "auth": {
            "openapi": {
                "tenantToken": {"bearer": target.tenant_token},
                "adminToken": {"bearer": target.admin_token},
            }
        },
        "checks": {"enabled": True},
        # Nothing learnt by one run feeds the next: CI runs are reproducible and leave no files behind.
        "cache": {"enabled": False},
        "phases": {phase: {"enabled": phase in enabled} for phase in PHASES},
    }
    data["phases"]["stateful"].update({"max-steps": STATEFUL_STEPS, "generation": {"max-examples": STATEFUL_EXAMPLES}})
    return SchemathesisConfig.from_dict(data)


def load_schema(target: FuzzTarget, phases: Iterable[str]) -> OpenApiSchema:
    schema = schemathesis.openapi.from_asgi(OPENAPI_PATH, target.app, config=fuzz_config(target, phases))
    register_expectations(schema)
    return schema
