"""Settings: read once from an environment mapping, refused early and clearly when unusable."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy.engine import make_url

from tenantry.settings import MIN_PEPPER_LENGTH, Settings, SettingsError, load_settings, to_asyncpg_url

PEPPER = "p" * MIN_PEPPER_LENGTH
BASE = {
    "DATABASE_URL": "postgresql://admin:admin-secret@db.example:6543/tenantry",
    "TENANTRY_TOKEN_PEPPER": PEPPER,
    "TENANTRY_APP_PASSWORD": "app-secret",
}


def _env(**changes: str | None) -> dict[str, str]:
    """BASE with some variables changed; None removes one."""
    env = {**BASE, **changes}
    return {k: v for k, v in env.items() if v is not None}


def test_base_environment_loads() -> None:
    settings = load_settings(_env())
    assert settings.database_url == BASE["DATABASE_URL"]
    assert settings.token_pepper == PEPPER
    assert settings.app_password == "app-secret"
    assert settings.dev_mode is False


def test_process_environment_is_not_read_when_a_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTRY_PORT", "9999")
    assert load_settings(_env()).port == 8000


# --- DATABASE_URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [_env(DATABASE_URL=None), _env(DATABASE_URL="")], ids=["missing", "empty"])
def test_refuses_without_database_url(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings(env)


def test_refuses_without_database_url_even_in_dev_mode() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({"TENANTRY_DEV": "1"})


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pepper", [None, "", "p" * (MIN_PEPPER_LENGTH - 1)], ids=["missing", "empty", f"{MIN_PEPPER_LENGTH - 1} chars"]
)
def test_outside_dev_mode_refuses_a_missing_or_short_pepper(pepper: str | None) -> None:
    with pytest.raises(SettingsError, match="TENANTRY_TOKEN_PEPPER"):
        load_settings(_env(TENANTRY_TOKEN_PEPPER=pepper))


def test_pepper_of_minimum_length_is_accepted() -> None:
    assert load_settings(_env(TENANTRY_TOKEN_PEPPER="q" * MIN_PEPPER_LENGTH)).token_pepper == "q" * MIN_PEPPER_LENGTH


@pytest.mark.parametrize("password", [None, ""], ids=["missing", "empty"])
def test_outside_dev_mode_refuses_a_missing_app_password(password: str | None) -> None:
    with pytest.raises(SettingsError, match="TENANTRY_APP_PASSWORD"):
        load_settings(_env(TENANTRY_APP_PASSWORD=password))


def test_both_missing_secrets_are_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(_env(TENANTRY_TOKEN_PEPPER=None, TENANTRY_APP_PASSWORD=None))
    assert "TENANTRY_TOKEN_PEPPER" in str(raised.value)
    assert "TENANTRY_APP_PASSWORD" in str(raised.value)


def test_secret_values_never_appear_in_the_error() -> None:
    short = "short-but-secret"
    with pytest.raises(SettingsError) as raised:
        load_settings(_env(TENANTRY_TOKEN_PEPPER=short))
    assert short not in str(raised.value)


@pytest.mark.parametrize("flag", ["1", "true", "TRUE", "yes", "on", " On "])
def test_dev_mode_accepts_missing_secrets(flag: str) -> None:
    settings = load_settings(_env(TENANTRY_DEV=flag, TENANTRY_TOKEN_PEPPER=None, TENANTRY_APP_PASSWORD=None))
    assert settings.dev_mode is True


def test_dev_mode_override_accepts_missing_secrets() -> None:
    settings = load_settings({"DATABASE_URL": BASE["DATABASE_URL"]}, dev_mode=True)
    assert settings.dev_mode is True


def test_migrations_need_only_the_app_password() -> None:
    settings = load_settings(_env(TENANTRY_TOKEN_PEPPER=None), require=("app_password",))
    assert settings.token_pepper == ""
    with pytest.raises(SettingsError, match="TENANTRY_APP_PASSWORD"):
        load_settings(_env(TENANTRY_TOKEN_PEPPER=None, TENANTRY_APP_PASSWORD=None), require=("app_password",))


@pytest.mark.parametrize("changes", [{"token_pepper": "short"}, {"app_password": ""}, {"token_pepper": ""}], ids=str)
def test_app_factory_refuses_settings_without_secrets(changes: dict[str, str]) -> None:
    from tenantry.app import create_app

    settings = msgspec.structs.replace(load_settings(_env()), **changes)
    with pytest.raises(SettingsError, match="missing secrets"):
        create_app(settings)


# --- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", False), ("false", False), ("no", False), ("off", False), ("", False)]
)
def test_false_spellings(raw: str, expected: bool) -> None:
    assert load_settings(_env(TENANTRY_DB_STATEMENT_CACHE=raw)).db_statement_cache is expected


def test_the_pool_is_opened_at_startup_unless_turned_off() -> None:
    assert load_settings(_env()).db_pool_prefill is True
    assert load_settings(_env(TENANTRY_DB_POOL_PREFILL="false")).db_pool_prefill is False
    assert load_settings(_env(TENANTRY_DB_POOL_PREFILL=" On ")).db_pool_prefill is True


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TENANTRY_DEV", "maybe"),
        ("TENANTRY_DEV", "2"),
        ("TENANTRY_DB_STATEMENT_CACHE", "enabled"),
        ("TENANTRY_DB_POOL_PREFILL", "full"),
    ],
)
def test_bad_boolean_is_a_clear_error(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(_env(**{variable: raw}))
    message = str(raised.value)
    assert variable in message
    assert repr(raw) in message
    assert "true or false" in message


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TENANTRY_PORT", "eighty"),
        ("TENANTRY_PORT", "80.5"),
        ("TENANTRY_DB_POOL_SIZE", "1.5"),
        ("TENANTRY_DB_POOL_SIZE", ""),
        ("TENANTRY_DB_POOL_TIMEOUT_S", "soon"),
        ("TENANTRY_MAX_BODY_BYTES", "1MB"),
        ("TENANTRY_DB_STATEMENT_TIMEOUT_MS", "5s"),
        ("TENANTRY_WORKERS", "two"),
    ],
)
def test_bad_number_is_a_clear_error(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(_env(**{variable: raw}))
    message = str(raised.value)
    assert variable in message
    assert repr(raw) in message


def test_numbers_are_parsed() -> None:
    settings = load_settings(
        _env(
            TENANTRY_PORT="8080",
            TENANTRY_DB_POOL_SIZE="3",
            TENANTRY_DB_POOL_TIMEOUT_S="2.5",
            TENANTRY_DB_STATEMENT_TIMEOUT_MS="750",
            TENANTRY_MAX_BODY_BYTES="2048",
        )
    )
    assert (settings.port, settings.db_pool_size, settings.db_pool_timeout_s) == (8080, 3, 2.5)
    assert (settings.db_statement_timeout_ms, settings.max_body_bytes) == (750, 2048)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TENANTRY_DB_POOL_SIZE", "0"),
        ("TENANTRY_DB_MAX_OVERFLOW", "-1"),
        ("TENANTRY_WORKERS", "0"),
        ("TENANTRY_MAX_BODY_BYTES", "1000"),
    ],
)
def test_numbers_below_their_minimum_are_refused(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(_env(**{variable: raw}))


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TENANTRY_PORT", "0"),
        ("TENANTRY_PORT", "70000"),
        # PostgreSQL refuses a negative statement_timeout in set_config, so every request would fail.
        ("TENANTRY_DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("TENANTRY_DB_POOL_TIMEOUT_S", "-1"),
        ("TENANTRY_DB_POOL_TIMEOUT_S", "nan"),
    ],
)
def test_numbers_outside_their_valid_range_are_refused(variable: str, raw: str) -> None:
    # The message names the setting (as the field or as the variable, in any case).
    with pytest.raises(SettingsError, match="(?i)" + variable.removeprefix("TENANTRY_")):
        load_settings(_env(**{variable: raw}))


def test_unknown_override_is_a_settings_error() -> None:
    with pytest.raises(SettingsError):
        load_settings(_env(), no_such_setting=1)


# --- role names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Tenant", "bad-name", "1role", "", 'x"; DROP ROLE postgres; --', "role name", "r" * 64, "tenant$"],
)
@pytest.mark.parametrize(
    "variable", ["TENANTRY_OWNER_ROLE", "TENANTRY_TENANT_ROLE", "TENANTRY_PLATFORM_ROLE", "TENANTRY_APP_ROLE"]
)
def test_role_names_must_be_identifiers(variable: str, name: str) -> None:
    with pytest.raises(SettingsError, match="identifier"):
        load_settings(_env(**{variable: name}))


def test_role_name_of_63_characters_is_accepted() -> None:
    assert load_settings(_env(TENANTRY_TENANT_ROLE="t" * 63)).tenant_role == "t" * 63


@pytest.mark.parametrize(
    ("variable", "clashes_with"),
    [
        ("TENANTRY_APP_ROLE", "tenantry_tenant"),
        ("TENANTRY_TENANT_ROLE", "tenantry_owner"),
        ("TENANTRY_PLATFORM_ROLE", "tenantry_app"),
        ("TENANTRY_OWNER_ROLE", "tenantry_platform"),
    ],
)
def test_role_names_must_be_distinct(variable: str, clashes_with: str) -> None:
    with pytest.raises(SettingsError, match="different"):
        load_settings(_env(**{variable: clashes_with}))


# --- URLs --------------------------------------------------------------------------------------------------


def test_app_url_uses_the_app_role_and_keeps_the_server() -> None:
    env = _env(DATABASE_URL="postgresql://admin:admin-secret@db.example:6543/tenantry?sslmode=require")
    settings = load_settings(env)
    app, admin = settings.app_url, settings.admin_url

    assert app.drivername == "postgresql+asyncpg"
    assert (app.username, app.password) == ("tenantry_app", "app-secret")
    assert (app.host, app.port, app.database) == ("db.example", 6543, "tenantry")
    assert dict(app.query) == {"ssl": "require"}  # the keyword asyncpg.connect takes
    assert (admin.username, admin.password) == ("admin", "admin-secret")
    assert "admin-secret" not in app.render_as_string(hide_password=False)


# --- TLS: only when the URL asks -------------------------------------------------------------------


def test_tls_is_off_unless_the_url_asks_for_it() -> None:
    """asyncpg's own default, "prefer", tries TLS against every server first."""
    settings = load_settings(_env())
    assert settings.admin_url.query["ssl"] == "disable"
    assert settings.app_url.query["ssl"] == "disable"
    assert "sslmode=disable" in settings.auth_listen_dsn


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
@pytest.mark.parametrize("key", ["sslmode", "ssl"])
def test_the_urls_tls_mode_reaches_every_connection(key: str, mode: str) -> None:
    url = f"postgresql://admin:s@db.example/tenantry?{key}={mode}"
    settings = load_settings(_env(DATABASE_URL=url))
    for derived in (settings.admin_url, settings.app_url):
        assert dict(derived.query) == {"ssl": mode}
    listen = make_url(settings.auth_listen_dsn)
    assert dict(listen.query) == {"sslmode": mode}  # libpq's name in a DSN for asyncpg.connect


def test_certificate_files_in_the_url_are_refused_with_the_variable_to_use() -> None:
    url = "postgresql://a@db.example/t?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    with pytest.raises(SettingsError, match="PGSSLROOTCERT"):
        load_settings(_env(DATABASE_URL=url))


def test_an_unknown_tls_mode_is_refused() -> None:
    with pytest.raises(SettingsError, match="sslmode"):
        load_settings(_env(DATABASE_URL="postgresql://a@db.example/t?sslmode=always"))


def test_app_url_follows_a_custom_app_role_and_odd_password() -> None:
    password = "p@ss:w/rd?#%"
    settings = load_settings(_env(TENANTRY_APP_ROLE="api_login", TENANTRY_APP_PASSWORD=password))
    rendered = settings.app_url.render_as_string(hide_password=False)
    reparsed = make_url(rendered)
    assert (reparsed.username, reparsed.password) == ("api_login", password)
    assert (reparsed.host, reparsed.port, reparsed.database) == ("db.example", 6543, "tenantry")


def test_app_database_url_is_honoured() -> None:
    settings = load_settings(
        _env(TENANTRY_APP_DATABASE_URL="postgres://tenantry_app:pooled@pgbouncer.internal:6432/tenantry")
    )
    app = settings.app_url
    assert app.drivername == "postgresql+asyncpg"
    assert (app.username, app.password) == ("tenantry_app", "pooled")
    assert (app.host, app.port, app.database) == ("pgbouncer.internal", 6432, "tenantry")
    assert settings.admin_url.host == "db.example"  # migrations still go straight to the server


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@h:5432/d",
        "postgresql://u:p@h:5432/d",
        "postgresql+asyncpg://u:p@h:5432/d",
        "postgresql+psycopg://u:p@h:5432/d",
    ],
)
def test_postgres_urls_get_the_asyncpg_driver(url: str) -> None:
    converted = to_asyncpg_url(url)
    assert converted.drivername == "postgresql+asyncpg"
    assert (converted.username, converted.password, converted.host, converted.port, converted.database) == (
        "u",
        "p",
        "h",
        5432,
        "d",
    )
    settings = load_settings(_env(DATABASE_URL=url))
    assert settings.admin_url.drivername == "postgresql+asyncpg"
    assert settings.app_url.drivername == "postgresql+asyncpg"


NOT_POSTGRES = ["mysql://u:p@h/d", "sqlite:///tenantry.db", "mssql+pyodbc://u:p@h/d", "not a url at all"]


@pytest.mark.parametrize("url", NOT_POSTGRES)
def test_to_asyncpg_url_refuses_anything_but_postgres(url: str) -> None:
    with pytest.raises(SettingsError):
        to_asyncpg_url(url)


@pytest.mark.parametrize("url", NOT_POSTGRES)
def test_load_settings_refuses_a_non_postgres_database_url(url: str) -> None:
    """Refused when the settings are read, not later when the first engine is built."""
    with pytest.raises(SettingsError):
        load_settings(_env(DATABASE_URL=url))


@pytest.mark.parametrize("url", NOT_POSTGRES)
def test_load_settings_refuses_a_non_postgres_app_database_url(url: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(_env(TENANTRY_APP_DATABASE_URL=url))


def test_settings_are_immutable() -> None:
    settings = load_settings(_env())
    with pytest.raises(AttributeError):
        settings.tenant_role = "other"  # type: ignore[misc]
    assert isinstance(settings, Settings)


def test_the_auth_listener_goes_straight_to_postgresql_as_the_app_role() -> None:
    direct = load_settings(_env(DATABASE_URL="postgresql://admin:pw@db:5432/app", TENANTRY_APP_PASSWORD="s"))
    assert make_url(direct.auth_listen_dsn) == make_url("postgresql://tenantry_app:s@db:5432/app?sslmode=disable")

    # Through a pooler the app URL is PgBouncer, where LISTEN does not hold: keep its credentials,
    # take the server from DATABASE_URL.
    pooled = load_settings(
        _env(
            DATABASE_URL="postgresql://admin:pw@db:5432/app",
            TENANTRY_APP_DATABASE_URL="postgresql://tenantry_app:s2@pgbouncer:6432/app",
        )
    )
    assert make_url(pooled.auth_listen_dsn) == make_url("postgresql://tenantry_app:s2@db:5432/app?sslmode=disable")

    chosen = load_settings(_env(TENANTRY_AUTH_LISTEN_URL="postgresql://l:x@direct/app"))
    assert make_url(chosen.auth_listen_dsn) == make_url("postgresql://l:x@direct/app?sslmode=disable")


@pytest.mark.parametrize("raw", ["-1", "3601", "nan"])
def test_auth_cache_ttl_is_bounded(raw: str) -> None:
    with pytest.raises(SettingsError, match="TENANTRY_AUTH_CACHE_TTL_S"):
        load_settings(_env(TENANTRY_AUTH_CACHE_TTL_S=raw))


def test_a_zero_ttl_turns_the_auth_cache_off() -> None:
    assert not load_settings(_env(TENANTRY_AUTH_CACHE_TTL_S="0")).auth_cache_enabled
