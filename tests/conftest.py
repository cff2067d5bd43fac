"""Fixtures: database server -> migrated database -> settings -> app -> client -> workspaces.

The server is provisioned in the order of docs/02-quickstart.md: TEST_DATABASE_URL, then
testcontainers when a Docker engine answers, then the embedded PostgreSQL wheel. The schema comes
from the real migrations and policies, and the app connects as the app login role, exactly as in
production (not in dev mode, with real secrets).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tenantry.admin.accounts import AdminTokenService, NewAdminToken
from tenantry.app import create_app
from tenantry.db.engine import create_engine
from tenantry.db.migrate import upgrade
from tenantry.db.server import drop_database, embedded_server, ensure_database
from tenantry.settings import Settings, load_settings
from tenantry.tenancy.session import SET_TRANSACTION_CONTEXT, platform_session_factory, transaction_context
from tenantry.workspaces.bootstrap import ProvisionedWorkspace, ProvisioningService

TEST_PEPPER = "test-pepper-" + "x" * 40
TEST_APP_PASSWORD = "test-app-password"


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A privileged URL on a real PostgreSQL server."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    if _docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    # Not under pytest's basetemp: another pytest run on the machine resets that folder to 0700,
    # which locks out the unprivileged user the embedded server runs as when we are root.
    parent = Path(tempfile.mkdtemp(prefix="tenantry-test-pg-"))
    server = embedded_server(parent / "data", cleanup="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()  # stops the server, then removes its data
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database of our own on that server, created for this run and dropped after it."""
    name = f"tenantry_test_{uuid.uuid4().hex[:10]}"
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(ensure_database(url))
    yield url
    asyncio.run(drop_database(url))


# Request limits that never refuse: the tests of the limits (tests/integration/test_request_limits*.py,
# test_workspace_plans.py) set the ones they test; the rest send bursts no real client would.
ROOMY_LIMITS = {
    f"limit_{scope}_{kind}": value
    for scope in ("workspace", "token")
    for kind, value in (("requests", 1_000_000), ("window_s", 1), ("concurrency", 10_000))
}


def make_settings(database_url: str, **overrides: object) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "TENANTRY_TOKEN_PEPPER": TEST_PEPPER,
        "TENANTRY_APP_PASSWORD": TEST_APP_PASSWORD,
    }
    return load_settings(env, **{**ROOMY_LIMITS, **overrides})


@pytest.fixture(scope="session")
def migrated_settings(database_url: str) -> Settings:
    settings = make_settings(database_url)
    asyncio.run(upgrade(settings))
    return settings


@pytest.fixture
def settings(migrated_settings: Settings) -> Settings:
    return migrated_settings


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


async def auth_changes_delivered(app: Litestar) -> None:
    """Wait until the app's principal cache has applied every change committed so far.

    A test that changes tokens, members or workspaces straight in the database is another process
    as far as the app is concerned: its cache learns of the change by notification, within
    milliseconds. The client below waits for that before each request, as a next request that
    arrives later than that would; tests/isolation/test_principal_cache.py tests the timing itself.
    """
    listener = app.state.get("auth_listener")
    if listener is not None:
        await listener.sync()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:

        async def deliver_auth_changes(_request: httpx.Request) -> None:
            await auth_changes_delivered(app)

        test_client.event_hooks["request"].append(deliver_auth_changes)
        yield test_client


@pytest.fixture
async def app_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The app login role's engine, as the API uses it."""
    engine = create_engine(settings.app_url, settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def admin_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The privileged account, for reading ground truth past RLS. Never used by the app."""
    engine = create_async_engine(settings.admin_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@dataclass
class Tenant:
    """A provisioned workspace and the clear token of its owner."""

    workspace: ProvisionedWorkspace

    @property
    def id(self) -> uuid.UUID:
        return self.workspace.workspace_id

    @property
    def token(self) -> str:
        return self.workspace.token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def provisioning(app_engine: AsyncEngine, settings: Settings) -> ProvisioningService:
    return ProvisioningService(app_engine, settings)


@pytest.fixture
def make_tenant(provisioning: ProvisioningService):  # type: ignore[no-untyped-def]
    async def make(label: str = "ws") -> Tenant:
        slug = f"{label}-{uuid.uuid4().hex[:12]}"
        created = await provisioning.create_workspace(
            slug=slug, name=f"Workspace {label}", owner_email=f"owner-{slug}@example.com"
        )
        return Tenant(created)

    return make


@pytest.fixture
async def tenant_a(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return await make_tenant("a")


@pytest.fixture
async def tenant_b(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return await make_tenant("b")


async def issue_admin_token(engine: AsyncEngine, settings: Settings, name: str) -> tuple[NewAdminToken, uuid.UUID]:
    """A platform admin token, made by the same service as `tenantry admin token create`."""
    async with platform_session_factory(engine, settings)() as session:
        new = await AdminTokenService(session, settings).issue(name)
    return new, new.id


async def revoke_admin_token(engine: AsyncEngine, settings: Settings, token_id: uuid.UUID) -> bool:
    async with platform_session_factory(engine, settings)() as session:
        await AdminTokenService(session, settings).revoke(token_id)
    return True


@pytest.fixture
async def admin_headers(app_engine: AsyncEngine, settings: Settings) -> dict[str, str]:
    """Authorization headers carrying a fresh platform admin token."""
    issued, _ = await issue_admin_token(app_engine, settings, f"test admin {uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {issued.token}"}


async def as_tenant(connection: AsyncConnection, settings: Settings, tenant_id: uuid.UUID | None) -> None:
    """Switch a raw app-role connection's transaction to the tenant role, as the session hook does."""
    await connection.execute(SET_TRANSACTION_CONTEXT, transaction_context(settings.tenant_role, tenant_id))


async def plan_as_tenant(app_engine: AsyncEngine, settings: Settings, tenant_id: uuid.UUID, query: Any) -> str:
    """PostgreSQL's plan for a repository query, planned as the tenant role with its policy applied."""
    sql = str(query.compile(dialect=app_engine.dialect, compile_kwargs={"literal_binds": True}))
    async with app_engine.connect() as connection:
        await as_tenant(connection, settings, tenant_id)
        return "\n".join(row[0] for row in await connection.exec_driver_sql("EXPLAIN " + sql))


async def snapshot_rows(admin_engine: AsyncEngine, table: str, tenant_id: uuid.UUID) -> list[str]:
    """Every row of one tenant in `table`, as exact text, read past RLS as the privileged account."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT t::text FROM public.{table} AS t WHERE tenant_id = :t ORDER BY t::text"),
            {"t": tenant_id},
        )
        return [r[0] for r in rows]


async def create_product(client: AsyncTestClient[Litestar], tenant: Tenant, **fields: object) -> dict[str, object]:
    body = {"name": "Widget", "price_cents": 1999, "currency": "EUR", "sku": f"SKU-{uuid.uuid4().hex[:8]}"}
    body.update(fields)
    response = await client.post("/v1/products", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client that runs the app in this event loop, so concurrent requests really interleave.

    Litestar's AsyncTestClient hands each request to a portal thread and blocks until it is done,
    which serializes requests however many are gathered; httpx's ASGI transport does not.
    """
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def all_pages(
    client: AsyncTestClient[Litestar], path: str, tenant: Tenant, limit: int, **params: object
) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return the pages as received."""
    pages = []
    cursor: str | None = None
    for _ in range(200):
        query: dict[str, object] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(path, params=query, headers=tenant.headers)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if not page["has_more"]:
            return pages
        cursor = page["next_cursor"]
        assert cursor, page
    raise AssertionError("pagination never ended")
