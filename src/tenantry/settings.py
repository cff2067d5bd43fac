"""Settings, read once from the environment into one typed object that `create_app` receives.

Nothing here is a module-level singleton: tests build a `Settings` per configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy.engine import URL, make_url

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIN_PEPPER_LENGTH = 32
LOG_FORMATS = ("text", "json")
# libpq's sslmode values, all of which asyncpg understands. Without one in the URL, no TLS is
# attempted: asyncpg's own default ("prefer") tries TLS against every server first.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SSL_MODE = "disable"
# libpq's certificate parameters and the environment variables asyncpg reads for them.
SSL_FILE_VARIABLES = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
}


class SettingsError(ValueError):
    """The environment does not describe a configuration the service can run with."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads from its environment.

    `database_url` names the server, the database and an account allowed to run migrations
    (create roles, own tables). The API never serves requests with that account: it connects as
    `app_role` (derived from `database_url` unless `app_database_url` says otherwise, e.g. to go
    through PgBouncer) and becomes the tenant role inside each transaction.
    """

    database_url: str
    app_database_url: str | None = None
    dev_mode: bool = False

    owner_role: str = "tenantry_owner"
    tenant_role: str = "tenantry_tenant"
    platform_role: str = "tenantry_platform"
    app_role: str = "tenantry_app"
    app_password: str = ""
    token_pepper: str = ""

    # A fixed pool, no overflow: SQLAlchemy closes an overflow connection when it comes back to a
    # full pool, so a burst above pool_size would open and close connections continuously. With
    # none, a request waits up to db_pool_timeout_s for a connection (then 503); a worker at 2 cores'
    # worth of CPU keeps 20 connections busy (docs/06-operations.md, Connections).
    db_pool_size: int = 20
    db_max_overflow: int = 0
    db_pool_timeout_s: float = 5.0
    # Open all db_pool_size connections when a worker starts, before its first request, instead of
    # one by one under the first burst of traffic (db/engine.py, fill_pool).
    db_pool_prefill: bool = True
    db_statement_timeout_ms: int = 5000
    # asyncpg's prepared-statement cache; turn off behind PgBouncer older than 1.21 (transaction mode).
    db_statement_cache: bool = True
    # Verified tokens are remembered this long (0: never); see src/tenantry/auth/cache.py.
    auth_cache_ttl_s: float = 60.0
    # The connection for the cache's change notifications; see `auth_listen_dsn`.
    auth_listen_url: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips). The login throttle
    # keys on the client address, so behind a load balancer list it here, or every client shares one.
    forwarded_allow_ips: str = "127.0.0.1"
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    # "text" (time level logger message) or "json" (one JSON object per record); core/logs.py.
    log_format: str = "text"

    # Prometheus metrics (docs/06-operations.md, Metrics): collected only when on, and served by
    # `tenantry serve` / `tenantry dev` on their own address, never on the API's port.
    metrics: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    # OpenTelemetry tracing, exported over OTLP (the SDK reads the OTEL_* variables itself).
    tracing: bool = False

    # Limits per workspace and per token (src/tenantry/http/limits.py; docs/06-operations.md):
    # `*_requests` per `*_window_s` seconds (a bucket that refills evenly), and at most
    # `*_concurrency` requests in flight. A workspace's plan overrides any of them.
    limit_workspace_requests: int = 200
    limit_workspace_window_s: int = 2
    limit_workspace_concurrency: int = 10
    limit_token_requests: int = 100
    limit_token_window_s: int = 2
    limit_token_concurrency: int = 5
    # A refusal is answered after this many ms, so a client that ignores 429s and loops costs
    # about a request a second per connection, not hundreds (0: at once).
    limit_refusal_delay_ms: int = 1000
    # Where the counters live, shared by every process. Unset: each process counts on its own.
    redis_url: str | None = None
    redis_key_prefix: str = "tenantry:"

    def __post_init__(self) -> None:
        for name in ("owner_role", "tenant_role", "platform_role", "app_role"):
            value = getattr(self, name)
            if not _IDENTIFIER.match(value):
                raise SettingsError(f"{name} must be a lower-case SQL identifier, got {value!r}")
        if len({self.owner_role, self.tenant_role, self.platform_role, self.app_role}) != 4:
            raise SettingsError("owner, tenant, platform and app roles must be four different roles")
        if self.db_pool_size < 1 or self.db_max_overflow < 0:
            raise SettingsError("db_pool_size must be at least 1 and db_max_overflow at least 0")
        if self.workers < 1:
            raise SettingsError("workers must be at least 1")
        if self.max_body_bytes < 1024:
            raise SettingsError("max_body_bytes must be at least 1024")
        if not 1 <= self.port <= 65535:
            raise SettingsError("TENANTRY_PORT must be between 1 and 65535")
        if not 1 <= self.metrics_port <= 65535:
            raise SettingsError("TENANTRY_METRICS_PORT must be between 1 and 65535")
        if self.metrics and self.metrics_port == self.port and self.metrics_host == self.host:
            raise SettingsError("TENANTRY_METRICS_PORT must differ from TENANTRY_PORT")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"TENANTRY_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if not 1 <= self.db_statement_timeout_ms <= 3_600_000:
            raise SettingsError("TENANTRY_DB_STATEMENT_TIMEOUT_MS must be between 1 and 3600000")
        if not 0 <= self.auth_cache_ttl_s <= 3600:  # also false for NaN
            raise SettingsError("TENANTRY_AUTH_CACHE_TTL_S must be between 0 and 3600")
        if not 0 < self.db_pool_timeout_s <= 600:  # also false for NaN
            raise SettingsError("TENANTRY_DB_POOL_TIMEOUT_S must be more than 0 and at most 600")
        _check_limits(self)
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("TENANTRY_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        # Refuse a URL that is not PostgreSQL now, with a clear message, not at first connection.
        to_asyncpg_url(self.database_url)
        for url in (self.app_database_url, self.auth_listen_url):
            if url:
                to_asyncpg_url(url)

    def require_secrets(self, secrets: tuple[str, ...] = ("token_pepper", "app_password")) -> None:
        """Refuse to run without real secrets outside dev mode (dev mode generates its own)."""
        if self.dev_mode:
            return
        missing = []
        if "token_pepper" in secrets and len(self.token_pepper) < MIN_PEPPER_LENGTH:
            missing.append(f"TENANTRY_TOKEN_PEPPER (at least {MIN_PEPPER_LENGTH} characters)")
        if "app_password" in secrets and not self.app_password:
            missing.append("TENANTRY_APP_PASSWORD")
        if missing:
            raise SettingsError("missing secrets: " + ", ".join(missing))

    @property
    def admin_url(self) -> URL:
        """The privileged URL used for migrations and bootstrap, with the asyncpg driver."""
        return to_asyncpg_url(self.database_url)

    @property
    def auth_cache_enabled(self) -> bool:
        return self.auth_cache_ttl_s > 0

    @property
    def auth_listen_dsn(self) -> str:
        """The libpq URL of the cache's LISTEN connection: the app role, straight to PostgreSQL.

        Not `app_database_url`, which may be a transaction-pooling PgBouncer, where LISTEN does not
        hold: the server of `database_url` with the app role's credentials (those of
        `app_database_url` when it carries them), unless `auth_listen_url` says otherwise."""
        if self.auth_listen_url:
            url = to_asyncpg_url(self.auth_listen_url)
        elif self.app_database_url:
            app = to_asyncpg_url(self.app_database_url)
            url = self.admin_url.set(username=app.username, password=app.password)
        else:
            url = self.app_url
        return to_libpq_dsn(url)

    @property
    def app_url(self) -> URL:
        """The URL the API serves requests with: always the app login role."""
        if self.app_database_url:
            return to_asyncpg_url(self.app_database_url)
        return self.admin_url.set(username=self.app_role, password=self.app_password or None)


# The bounds of every limit, for the defaults here and for a workspace's plan (the admin API).
LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "requests": (1, 1_000_000),
    "window_s": (1, 3600),
    "concurrency": (1, 10_000),
}


def _check_limits(settings: Settings) -> None:
    if not 0 <= settings.limit_refusal_delay_ms <= 10_000:
        raise SettingsError("TENANTRY_LIMIT_REFUSAL_DELAY_MS must be between 0 and 10000")
    for scope in ("workspace", "token"):
        for kind, (low, high) in LIMIT_BOUNDS.items():
            value = getattr(settings, f"limit_{scope}_{kind}")
            if not low <= value <= high:
                raise SettingsError(f"TENANTRY_LIMIT_{scope.upper()}_{kind.upper()} must be between {low} and {high}")


# Environment variable -> (field, parser). This table is the one list of what the service reads;
# compose.yaml is checked against it by a test.
ENVIRONMENT: dict[str, tuple[str, type]] = {
    "DATABASE_URL": ("database_url", str),
    "TENANTRY_APP_DATABASE_URL": ("app_database_url", str),
    "TENANTRY_DEV": ("dev_mode", bool),
    "TENANTRY_OWNER_ROLE": ("owner_role", str),
    "TENANTRY_TENANT_ROLE": ("tenant_role", str),
    "TENANTRY_PLATFORM_ROLE": ("platform_role", str),
    "TENANTRY_APP_ROLE": ("app_role", str),
    "TENANTRY_APP_PASSWORD": ("app_password", str),
    "TENANTRY_TOKEN_PEPPER": ("token_pepper", str),
    "TENANTRY_DB_POOL_SIZE": ("db_pool_size", int),
    "TENANTRY_DB_MAX_OVERFLOW": ("db_max_overflow", int),
    "TENANTRY_DB_POOL_TIMEOUT_S": ("db_pool_timeout_s", float),
    "TENANTRY_DB_POOL_PREFILL": ("db_pool_prefill", bool),
    "TENANTRY_DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", int),
    "TENANTRY_DB_STATEMENT_CACHE": ("db_statement_cache", bool),
    "TENANTRY_AUTH_CACHE_TTL_S": ("auth_cache_ttl_s", float),
    "TENANTRY_AUTH_LISTEN_URL": ("auth_listen_url", str),
    "TENANTRY_HOST": ("host", str),
    "TENANTRY_PORT": ("port", int),
    "TENANTRY_WORKERS": ("workers", int),
    "TENANTRY_FORWARDED_ALLOW_IPS": ("forwarded_allow_ips", str),
    "TENANTRY_MAX_BODY_BYTES": ("max_body_bytes", int),
    "TENANTRY_LOG_LEVEL": ("log_level", str),
    "TENANTRY_LOG_FORMAT": ("log_format", str),
    "TENANTRY_METRICS": ("metrics", bool),
    "TENANTRY_METRICS_HOST": ("metrics_host", str),
    "TENANTRY_METRICS_PORT": ("metrics_port", int),
    "TENANTRY_TRACING": ("tracing", bool),
    "TENANTRY_LIMIT_WORKSPACE_REQUESTS": ("limit_workspace_requests", int),
    "TENANTRY_LIMIT_WORKSPACE_WINDOW_S": ("limit_workspace_window_s", int),
    "TENANTRY_LIMIT_WORKSPACE_CONCURRENCY": ("limit_workspace_concurrency", int),
    "TENANTRY_LIMIT_TOKEN_REQUESTS": ("limit_token_requests", int),
    "TENANTRY_LIMIT_TOKEN_WINDOW_S": ("limit_token_window_s", int),
    "TENANTRY_LIMIT_TOKEN_CONCURRENCY": ("limit_token_concurrency", int),
    "TENANTRY_LIMIT_REFUSAL_DELAY_MS": ("limit_refusal_delay_ms", int),
    "TENANTRY_REDIS_URL": ("redis_url", str),
    "TENANTRY_REDIS_KEY_PREFIX": ("redis_key_prefix", str),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name: str, raw: str, kind: type) -> object:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    if kind is int or kind is float:
        try:
            return kind(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    return raw


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    require: tuple[str, ...] = ("token_pepper", "app_password"),
    **overrides: Any,
) -> Settings:
    """Read settings from `environ` (default: the process environment); `overrides` win.

    Outside dev mode the secrets in `require` must be set: the API needs both, migrations only
    the app role's password (the pepper never touches the schema).
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for variable, (field, kind) in ENVIRONMENT.items():
        if variable in env:
            values[field] = _parse(variable, env[variable], kind)
    values.update(overrides)
    if not values.get("database_url"):
        raise SettingsError("DATABASE_URL is not set")
    try:
        settings = Settings(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise SettingsError(str(exc)) from None
    settings.require_secrets(require)
    return settings


def to_asyncpg_url(url: str | URL) -> URL:
    """Accept `postgres://`, `postgresql://` or `postgresql+asyncpg://` and use the asyncpg driver.

    The TLS mode travels as the `ssl` query parameter, the keyword SQLAlchemy hands to
    asyncpg.connect (which has no `sslmode` keyword): `sslmode=` or `ssl=` from the URL, else
    `disable`. So TLS is attempted exactly when the URL asks for it, by every connection made
    from these URLs (docs/06-operations.md, TLS to PostgreSQL).
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise SettingsError("DATABASE_URL is not a valid database URL") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise SettingsError("DATABASE_URL must point at PostgreSQL")
    if files := sorted(set(parsed.query) & set(SSL_FILE_VARIABLES)):
        # asyncpg reads them from its DSN only, never from the keywords SQLAlchemy passes it.
        hint = ", ".join(f"{SSL_FILE_VARIABLES[name]} instead of {name}" for name in files)
        raise SettingsError(f"certificate files cannot be given in a database URL: set {hint}")
    mode = parsed.query.get("sslmode") or parsed.query.get("ssl") or DEFAULT_SSL_MODE
    if not isinstance(mode, str) or mode not in SSL_MODES:
        raise SettingsError(f"sslmode in a database URL must be one of {', '.join(SSL_MODES)}, got {mode!r}")
    parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return parsed.set(drivername="postgresql+asyncpg")


def ssl_mode(url: URL) -> str:
    """The TLS mode of a URL made by `to_asyncpg_url`."""
    mode = url.query.get("ssl")
    return mode if isinstance(mode, str) else DEFAULT_SSL_MODE


def to_libpq_dsn(url: str | URL) -> str:
    """A plain `postgresql://` DSN for asyncpg.connect, with the TLS mode as libpq's `sslmode`."""
    parsed = to_asyncpg_url(url)
    mode = ssl_mode(parsed)
    parsed = parsed.difference_update_query(["ssl"]).update_query_dict({"sslmode": mode})
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
