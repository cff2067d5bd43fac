"""compose.yaml against the settings table and the rules of docs/06-operations.md ("Docker").

The container proof (`python3 scripts/dev.py containers`, run by .ci/run) starts the file for real;
these checks run everywhere, without an engine, and name the rule a change breaks.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tenantry.settings import ENVIRONMENT, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"

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


# -- the rules of docs/06-operations.md ("Docker") ------------------------------------------------

# Compose v1.29 (Debian 12's docker-compose) knows these top-level keys and no others (`name:`
# came with Compose v2), and these depends_on conditions.
COMPOSE_1_29_TOP_LEVEL = {"version", "services", "networks", "volumes", "secrets", "configs"}
COMPOSE_1_29_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
COMPOSE_1_29_HEALTHCHECK = {"test", "interval", "timeout", "retries", "start_period", "disable"}
RESTART_POLICIES = {"no", "always", "on-failure", "unless-stopped"}
# The variables that hold secrets: compose must refuse to start without them (`${NAME:?...}`).
SECRET_VARIABLES = {"POSTGRES_PASSWORD", "TENANTRY_APP_PASSWORD", "TENANTRY_TOKEN_PEPPER"}
SECRET_KEY = re.compile(r"PASSWORD|PEPPER|SECRET|TOKEN|KEY", re.IGNORECASE)
OFFICIAL_DEFAULTS = {
    "postgres": ("TENANTRY_POSTGRES_IMAGE", "postgres:18"),
    "pgbouncer": ("TENANTRY_PGBOUNCER_IMAGE", "edoburu/pgbouncer:"),
    "migrate": ("TENANTRY_IMAGE", "tenantry:local"),
    "api": ("TENANTRY_IMAGE", "tenantry:local"),
}


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _placeholders(text: str) -> list[tuple[str, str | None, str | None]]:
    return [(m.group("name"), m.group("op"), m.group("arg")) for m in _PLACEHOLDER.finditer(text) if m.group("name")]


def _one_time_jobs() -> set[str]:
    """Services some other service waits for to exit successfully: jobs, not servers."""
    return {
        name
        for service in _services().values()
        for name, rule in (service.get("depends_on") or {}).items()
        if isinstance(rule, dict) and rule.get("condition") == "service_completed_successfully"
    }


def test_compose_uses_only_what_docker_compose_1_29_knows() -> None:
    compose = _compose()
    unknown = {key for key in compose if key not in COMPOSE_1_29_TOP_LEVEL and not key.startswith("x-")}
    assert not unknown, f"top-level keys docker-compose 1.29 rejects: {sorted(unknown)}"
    for name, service in _services().items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert rule["condition"] in COMPOSE_1_29_CONDITIONS, (name, dependency, rule)
        extra = set(service.get("healthcheck", {})) - COMPOSE_1_29_HEALTHCHECK
        assert not extra, f"{name}: healthcheck keys docker-compose 1.29 rejects: {sorted(extra)}"


def test_one_time_jobs_are_migrate_only_and_are_awaited() -> None:
    assert _one_time_jobs() == {"migrate"}
    assert _services()["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", ["postgres", "migrate", "pgbouncer", "api"])
def test_every_service_has_a_restart_policy(service: str) -> None:
    policy = str(_services()[service].get("restart", ""))
    assert policy.split(":")[0] in RESTART_POLICIES, f"{service} has no restart policy"
    if service in _one_time_jobs():
        assert policy == "no", "a failed migration must stop the deployment, not run again in a loop"


@pytest.mark.parametrize("service", ["postgres", "pgbouncer", "api"])
def test_every_server_has_a_healthcheck_that_others_wait_for(service: str) -> None:
    check = _services()[service].get("healthcheck") or {}
    assert not check.get("disable"), f"{service}'s healthcheck is disabled"
    assert check.get("test", [""])[0] == "CMD", f"{service} has no healthcheck"
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    dependents = [
        name
        for name, other in _services().items()
        if (other.get("depends_on") or {}).get(service, {}).get("condition") == "service_healthy"
    ]
    assert dependents or service == "api", f"nothing waits for {service} to be healthy"


def test_no_secret_is_written_inline() -> None:
    for name in _services():
        for key, value in _raw_environment(name).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{name}.{key} must be a required ${{VAR:?...}}"
            if "://" in value:
                password = make_url(interpolate(value, {v: "PLACEHOLDER" for v in SECRET_VARIABLES})).password
                assert password in {None, "PLACEHOLDER"}, f"{name}.{key} carries an inline password"
                assert password is None or "${" in value.split("@")[0], f"{name}.{key}"
    for variable, op, _ in _placeholders(COMPOSE.read_text(encoding="utf-8")):
        if variable in SECRET_VARIABLES:
            assert op == ":?", f"${{{variable}}} must be required (:?), never defaulted"


def test_pgbouncer_takes_the_password_from_its_environment() -> None:
    script = _services()["pgbouncer"]["command"][0]
    assert "$$TENANTRY_APP_PASSWORD" in script
    assert "${TENANTRY_APP_PASSWORD" not in script, "compose would write the password into the command"


@pytest.mark.parametrize("service", sorted(OFFICIAL_DEFAULTS))
def test_images_come_from_variables_whose_defaults_are_the_official_images(service: str) -> None:
    variable, default = OFFICIAL_DEFAULTS[service]
    [(name, op, arg)] = _placeholders(_services()[service]["image"])
    assert (name, op) == (variable, ":-")
    assert arg is not None
    assert arg.startswith(default)


def test_the_build_base_defaults_to_the_dockerfiles_official_image() -> None:
    dockerfile_default = re.search(r"^ARG BASE_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_default
    for service in ("migrate", "api"):
        [(name, op, arg)] = _placeholders(_services()[service]["build"]["args"]["BASE_IMAGE"])
        assert (name, op, arg) == ("TENANTRY_BASE_IMAGE", ":-", dockerfile_default.group(1))


def test_the_container_proof_sets_only_variables_compose_reads() -> None:
    """scripts/containers.py runs this file with local images and secrets through compose's variables."""
    scripts = str(ROOT / "scripts")
    spec = importlib.util.spec_from_file_location("tenantry_container_proof", ROOT / "scripts" / "containers.py")
    assert spec is not None
    assert spec.loader is not None
    proof = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(proof)
    finally:
        if scripts in sys.path:
            sys.path.remove(scripts)
    read = {name for name, _, _ in _placeholders(COMPOSE.read_text(encoding="utf-8"))}
    written = {*proof.LOCAL_IMAGES, proof.APP_IMAGE_VARIABLE, proof.PORT_VARIABLE, *proof.SECRETS}
    assert written <= read, f"the proof sets variables compose.yaml never reads: {sorted(written - read)}"
    assert set(proof.SECRETS) == SECRET_VARIABLES
    assert set(proof.SERVICES) == set(_services())
    assert _one_time_jobs() == proof.JOBS
