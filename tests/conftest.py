"""Fixtures: database server -> migrated database -> settings -> app -> client -> workspaces.

The server comes from the chain of tests/support/servers.py (TEST_DATABASE_URL, a container, the
embedded PostgreSQL; docs/02-quickstart.md). The schema comes from the real migrations and
policies, and the app connects as the app login role, exactly as in production (not in dev mode,
with real secrets). Helpers that tests call live in tests/support; this file only holds fixtures
and the hooks that run the chain once for a run of several xdist workers.

Scopes: the server, the database, the app and its client are built once per session (building the
app alone takes about 0.3 s, and most tests only talk to it over HTTP); every test still gets its
own workspaces, so tests never see each other's rows. A test that needs an app of its own (it runs
the lifespan itself, reads or changes the token cache's state, or registers routes) takes
`fresh_app`; one that needs other settings builds its app from them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import NullPool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.app import create_app
from tenantry.db.engine import create_engine
from tenantry.db.server import drop_database, ensure_database
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.support import Client, Tenant, auth_changes_delivered, issue_admin_token, make_settings, migrate, new_tenant
from tests.support.servers import TestDatabaseUnavailable, provision_server

# The key under which an xdist controller hands its server's URL to the workers.
SHARED_SERVER = "tenantry_test_server_url"
_SERVER_STACK = pytest.StashKey[ExitStack]()
_SERVER_URL = pytest.StashKey[str]()


# --- hooks: the chain once per run, and "no tests" is a failure ----------------------------------


def _say(config: pytest.Config) -> Any:
    """Print one line to the terminal now, past output capture (the chain's fallback notice)."""

    def say(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else ExitStack():
            if reporter is not None:
                reporter.write_line(line, yellow=True, bold=True)
            else:
                print(line, flush=True)

    return say


def _is_xdist_controller(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return False
    return bool(getattr(config.option, "numprocesses", None)) and getattr(config.option, "dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    """With xdist, the controller provisions the one server every worker shares (its own database each)."""
    if not _is_xdist_controller(config) or config.option.collectonly:
        return
    stack = ExitStack()
    try:
        server = stack.enter_context(provision_server(os.environ, say=_say(config)))
    except TestDatabaseUnavailable as error:
        stack.close()
        raise pytest.UsageError(f"test database: {error}") from None
    config.stash[_SERVER_STACK] = stack
    config.stash[_SERVER_URL] = server.url


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    url = node.config.stash.get(_SERVER_URL, None)
    if url is not None:
        node.workerinput[SHARED_SERVER] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_SERVER_STACK, None)
    if stack is not None:
        stack.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that collected no test proved nothing: fail it (pytest's own code 5 reads as a pass to
    some callers). Workers of an xdist run are left alone; their controller decides."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and not hasattr(session.config, "workerinput"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("no test ran: that is a failure, not a pass (exit 1)", red=True, bold=True)


# --- the database ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A privileged URL on a real PostgreSQL server."""
    shared = getattr(request.config, "workerinput", {}).get(SHARED_SERVER)
    if shared:
        yield shared
        return
    try:
        with provision_server(os.environ, say=_say(request.config)) as server:
            yield server.url
    except TestDatabaseUnavailable as error:
        pytest.exit(f"test database: {error}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database of our own on that server (one per xdist worker), created for this run and dropped after it."""
    name = f"tenantry_test_{uuid.uuid4().hex[:10]}"
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(ensure_database(url))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def migrated_settings(database_url: str) -> Settings:
    settings = make_settings(database_url)
    asyncio.run(migrate(settings))
    return settings


@pytest.fixture
def settings(migrated_settings: Settings) -> Settings:
    return migrated_settings


# --- the app ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app(migrated_settings: Settings) -> Litestar:
    """The app the `client` serves, shared by the session: inspect it, never run its lifespan again."""
    shared = create_app(migrated_settings)
    lifespan = shared.lifespan
    running = False

    @asynccontextmanager
    async def once() -> AsyncIterator[None]:
        # A second lifespan would replace the engine the client's requests use, then dispose of it.
        nonlocal running
        if running:
            raise RuntimeError("the session's shared `app` is already running for `client`: use `fresh_app`")
        running = True
        try:
            async with lifespan():
                yield
        finally:
            running = False

    shared.lifespan = once  # type: ignore[method-assign]
    return shared


@pytest.fixture
def fresh_app(settings: Settings) -> Litestar:
    """An app of the test's own: a new token cache, and a lifespan the test may run (`serve`)."""
    return create_app(settings)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(app: Litestar) -> AsyncIterator[Client]:
    """The shared app's test client. It runs the app (and its lifespan) on a thread and loop of its
    own, so it serves tests whatever their event loop; before each request it waits until the app's
    token cache has heard of every change committed so far (see `auth_changes_delivered`)."""
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:

        async def deliver_auth_changes(_request: httpx.Request) -> None:
            await auth_changes_delivered(app)

        test_client.event_hooks["request"].append(deliver_auth_changes)
        yield test_client


# --- engines and workspaces ------------------------------------------------------------------------


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


@pytest.fixture
def provisioning(app_engine: AsyncEngine, settings: Settings) -> ProvisioningService:
    return ProvisioningService(app_engine, settings)


@pytest.fixture
def make_tenant(provisioning: ProvisioningService):  # type: ignore[no-untyped-def]
    async def make(label: str = "ws") -> Tenant:
        return await new_tenant(provisioning, label)

    return make


@pytest.fixture
async def tenant_a(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return await make_tenant("a")


@pytest.fixture
async def tenant_b(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return await make_tenant("b")


@pytest.fixture
async def admin_headers(app_engine: AsyncEngine, settings: Settings) -> dict[str, str]:
    """Authorization headers carrying a fresh platform admin token."""
    issued, _ = await issue_admin_token(app_engine, settings, f"test admin {uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {issued.token}"}
