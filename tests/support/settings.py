"""The test run's secrets, and settings for a database URL built the way production reads them."""

from __future__ import annotations

from tenantry.settings import Settings, load_settings

TEST_PEPPER = "test-pepper-" + "x" * 40
TEST_APP_PASSWORD = "test-app-password"


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings from an environment mapping (never the process's), not in dev mode, real secrets."""
    env = {
        "DATABASE_URL": database_url,
        "TENANTRY_TOKEN_PEPPER": TEST_PEPPER,
        "TENANTRY_APP_PASSWORD": TEST_APP_PASSWORD,
    }
    return load_settings(env, **overrides)
