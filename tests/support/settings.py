"""The test run's secrets, settings built the way production reads them, and the migration of a test database."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from tenantry.db.migrate import UpgradeReport, upgrade
from tenantry.settings import Settings, load_settings

TEST_PEPPER = "test-pepper-" + "x" * 40
TEST_APP_PASSWORD = "test-app-password"


# Request limits that never refuse: the tests of the limits (tests/integration/test_request_limits*.py,
# test_workspace_plans.py) set the ones they test; the rest send bursts no real client would.
ROOMY_LIMITS = {
    f"limit_{scope}_{kind}": value
    for scope in ("workspace", "token")
    for kind, value in (("requests", 1_000_000), ("window_s", 1), ("concurrency", 10_000))
}


# The pool is not opened at startup: many tests build apps of their own, each would hold
# db_pool_size connections from its start, and the test server allows 100 in all. The tests of
# the prefill (tests/integration/test_pool_prefill.py, test_pool_defaults.py) turn it on.
NO_PREFILL = {"db_pool_prefill": False}


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings from an environment mapping (never the process's), not in dev mode, real secrets,
    request limits that never refuse (ROOMY_LIMITS) and no pool prefill (NO_PREFILL) unless the
    test sets its own."""
    env = {
        "DATABASE_URL": database_url,
        "TENANTRY_TOKEN_PEPPER": TEST_PEPPER,
        "TENANTRY_APP_PASSWORD": TEST_APP_PASSWORD,
    }
    return load_settings(env, **{**ROOMY_LIMITS, **NO_PREFILL, **overrides})


# Any fixed key: every test run on a server takes it on the server's `postgres` database.
_MIGRATION_LOCK = 7_349_112_055


async def migrate(settings: Settings) -> UpgradeReport:
    """`tenantry db upgrade` for the test database, one run at a time on its server.

    Roles are cluster-wide, so two upgrades at once (two xdist workers, or two test runs sharing a
    server) both create and alter the same roles and one fails with "tuple concurrently updated".
    An advisory lock held on the server's `postgres` database serializes them. Every test that
    upgrades a database goes through here.
    """
    dsn = make_url(settings.database_url).set(drivername="postgresql", database="postgres")
    host = dsn.query.get("host")
    kwargs = {"host": host} if isinstance(host, str) else {}
    lock = await asyncpg.connect(dsn.difference_update_query(["host"]).render_as_string(hide_password=False), **kwargs)
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        return await upgrade(settings)
    finally:
        await lock.close()  # closing the session releases the lock
