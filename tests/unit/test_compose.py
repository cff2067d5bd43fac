"""compose.yaml against the settings table: no CI here runs Docker, so this is what keeps it honest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tenantry.settings import ENVIRONMENT, load_settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"

# What a user exports before `docker compose up`; URL-safe, as compose.yaml asks.
SAMPLE_ENVIRONMENT = {
    "POSTGRES_PASSWORD": "sample-postgres-password",
    "TENANTRY_APP_PASSWORD": "sample-app-password",
    "TENANTRY_TOKEN_PEPPER": "sample-pepper-" + "x" * 40,
}

# Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, and $$.
_PLACEHOLDER = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(LookupError):
    """A ${VAR:?message} whose variable is not set: compose refuses to start."""


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        present = environ.get(name)
        if op is not None and op.startswith(":"):
            present = present or None  # the colon forms treat empty like unset
        if present is not None:
            return present
        if op is not None and op.endswith("?"):
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-"):
            return arg
        return ""

    return _PLACEHOLDER.sub(substitute, value)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _raw_environment(service: str) -> dict[str, str]:
    """A service's `environment`, as a mapping, placeholders still in (it may also be a KEY=VALUE list)."""
    environment = _compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def _environment(service: str, environ: Mapping[str, str] = SAMPLE_ENVIRONMENT) -> dict[str, str]:
    return {key: interpolate(value, environ) for key, value in _raw_environment(service).items()}


def test_compose_defines_the_four_services() -> None:
    assert {"postgres", "migrate", "pgbouncer", "api"} <= set(_compose()["services"])


@pytest.mark.parametrize("service", ["migrate", "api"])
def test_every_variable_given_to_tenantry_is_a_setting(service: str) -> None:
    unknown = set(_raw_environment(service)) - set(ENVIRONMENT)
    assert not unknown, f"{service} sets variables that tenantry.settings never reads: {sorted(unknown)}"


def test_api_sets_secrets_urls_and_pooler_mode() -> None:
    required = {
        "TENANTRY_TOKEN_PEPPER",
        "TENANTRY_APP_PASSWORD",
        "DATABASE_URL",
        "TENANTRY_APP_DATABASE_URL",
        "TENANTRY_DB_STATEMENT_CACHE",
    }
    assert required <= set(_raw_environment("api"))


@pytest.mark.parametrize("secret", ["TENANTRY_TOKEN_PEPPER", "TENANTRY_APP_PASSWORD"])
def test_compose_refuses_to_start_without_a_secret(secret: str) -> None:
    without = {k: v for k, v in SAMPLE_ENVIRONMENT.items() if k != secret}
    with pytest.raises(MissingVariable, match=secret):
        _environment("api", without)


def test_settings_accept_the_api_environment() -> None:
    settings = load_settings(_environment("api"))
    assert settings.token_pepper == SAMPLE_ENVIRONMENT["TENANTRY_TOKEN_PEPPER"]
    assert settings.db_statement_cache is False
    # Requests go through the pooler as the app login role, with the password migrate gave it.
    assert settings.app_url.host == "pgbouncer"
    assert settings.app_url.username == settings.app_role
    assert settings.app_url.password == settings.app_password


def test_api_and_migrate_name_the_same_database() -> None:
    api = make_url(_environment("api")["DATABASE_URL"])
    migrate = make_url(_environment("migrate")["DATABASE_URL"])
    assert (api.host, api.port, api.database) == (migrate.host, migrate.port, migrate.database)
    assert make_url(_environment("api")["TENANTRY_APP_DATABASE_URL"]).database == migrate.database


def test_interpolation_helper_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a${SET}b$$c", env) == "avb$c"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${EMPTY?e}", env) == ""
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?e}", env)
