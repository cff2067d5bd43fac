"""The request-limit settings: defaults as documented, and refused out of range (docs/06-operations.md)."""

from __future__ import annotations

import pytest

from tenantry.settings import SettingsError, load_settings

BASE = {
    "DATABASE_URL": "postgresql://admin:secret@db.example:5432/tenantry",
    "TENANTRY_TOKEN_PEPPER": "p" * 32,
    "TENANTRY_APP_PASSWORD": "app-secret",
}


def test_the_documented_defaults() -> None:
    settings = load_settings(BASE)
    assert (settings.limit_workspace_requests, settings.limit_workspace_window_s) == (200, 2)
    assert (settings.limit_token_requests, settings.limit_token_window_s) == (100, 2)
    assert (settings.limit_workspace_concurrency, settings.limit_token_concurrency) == (10, 5)
    assert settings.limit_refusal_delay_ms == 1000
    assert settings.redis_url is None
    assert settings.redis_key_prefix == "tenantry:"


def test_limits_and_redis_come_from_the_environment() -> None:
    settings = load_settings(
        {**BASE, "TENANTRY_LIMIT_TOKEN_REQUESTS": "7", "TENANTRY_REDIS_URL": "redis://cache.internal:6379/2"}
    )
    assert settings.limit_token_requests == 7
    assert settings.redis_url == "redis://cache.internal:6379/2"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TENANTRY_LIMIT_WORKSPACE_REQUESTS", "0"),
        ("TENANTRY_LIMIT_TOKEN_REQUESTS", "1000001"),
        ("TENANTRY_LIMIT_TOKEN_WINDOW_S", "0"),
        ("TENANTRY_LIMIT_WORKSPACE_WINDOW_S", "3601"),
        ("TENANTRY_LIMIT_TOKEN_CONCURRENCY", "0"),
        ("TENANTRY_LIMIT_REFUSAL_DELAY_MS", "-1"),
        ("TENANTRY_LIMIT_REFUSAL_DELAY_MS", "10001"),
        ("TENANTRY_REDIS_URL", "http://cache.internal:6379"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({**BASE, variable: value})


def test_an_empty_redis_url_means_none() -> None:
    assert not load_settings({**BASE, "TENANTRY_REDIS_URL": ""}).redis_url
