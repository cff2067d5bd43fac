"""`tenantry dev`: the one-command development service.

Without DATABASE_URL it starts an embedded PostgreSQL whose data folder survives restarts. It
generates the secrets once and keeps them in the data folder, applies migrations and policies,
makes sure a demo workspace with an owner exists, prints a working token and a curl line, and
serves the API with its OpenAPI document and browsable UI.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import uuid
from pathlib import Path

from sqlalchemy import NullPool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.auth.resolver import resolve_token
from tenantry.auth.tokens import is_well_formed, token_digest
from tenantry.core.ids import uuid7
from tenantry.db.connectivity import DatabaseUnreachable, describe_connection_error
from tenantry.db.engine import create_engine
from tenantry.db.migrate import upgrade
from tenantry.db.server import ensure_database, start_embedded
from tenantry.settings import Settings, SettingsError, load_settings
from tenantry.tenancy.session import set_transaction_context
from tenantry.tools.serving import bind_listening_socket, ensure_port_free
from tenantry.workspaces.bootstrap import ProvisioningService

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.tenantry.dev"
DEMO_PRODUCTS = [
    ("Espresso beans, 1 kg", "ESP-1KG", 2490),
    ("Ceramic cup", "CUP-CER", 1200),
    ("Hand grinder", "GRD-HND", 5900),
]


def _write_private(path: Path, content: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(content, encoding="utf-8")


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets generated once per data folder and kept there (0600)."""
    path = data_dir / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    values = {"token_pepper": secrets.token_urlsafe(48), "app_password": secrets.token_urlsafe(24)}
    _write_private(path, json.dumps(values, indent=2))
    return values


def dev_settings(data_dir: Path, environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    generated = dev_secrets(data_dir)
    if not env.get("DATABASE_URL"):
        url = to_named_database(start_embedded(data_dir / "pgdata"), "tenantry")
        env["DATABASE_URL"] = url
        print(f"embedded PostgreSQL running, data in {data_dir / 'pgdata'}")
    else:
        env = {**deployment_roles(env["DATABASE_URL"], env), **env}
    env.setdefault("TENANTRY_TOKEN_PEPPER", generated["token_pepper"])
    env.setdefault("TENANTRY_APP_PASSWORD", generated["app_password"])
    settings = load_settings(env, dev_mode=True)
    if environ is None and os.environ.get("DATABASE_URL"):
        print(
            f"roles of this database: {settings.owner_role}, {settings.tenant_role}, {settings.platform_role}, {settings.app_role}"
        )
    return settings


ROLE_VARIABLES = {
    "TENANTRY_OWNER_ROLE": "owner",
    "TENANTRY_TENANT_ROLE": "tenant",
    "TENANTRY_PLATFORM_ROLE": "platform",
    "TENANTRY_APP_ROLE": "app",
}


def deployment_roles(database_url: str, env: dict[str, str]) -> dict[str, str]:
    """Role names of their own for a development database on a server you already have.

    Roles belong to the whole server, and every start sets the app role's password: with the
    default names, `tenantry dev` against a shared server would reset the password of every
    other deployment's `tenantry_app`. So the roles are named after the database
    (`tenantry_dev` -> `tenantry_dev_app`, ...) unless TENANTRY_*_ROLE say otherwise.
    """
    if all(variable in env for variable in ROLE_VARIABLES):
        return {}
    database = make_url(database_url).database or ""
    longest = max(len(suffix) for suffix in ROLE_VARIABLES.values()) + 1
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database) or len(database) + longest > 63:
        raise SettingsError(
            f"cannot name roles after the database {database!r} (a lower-case identifier of at most "
            f"{63 - longest} characters): set {', '.join(ROLE_VARIABLES)}"
        )
    return {variable: f"{database}_{suffix}" for variable, suffix in ROLE_VARIABLES.items()}


async def refuse_other_roles(settings: Settings) -> None:
    """A database set up under other role names cannot be migrated by these: say which to use."""
    engine = create_async_engine(settings.admin_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            owner = await connection.scalar(
                text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'workspaces'")
            )
    finally:
        await engine.dispose()
    if owner is not None and owner != settings.owner_role:
        prefix = owner.removesuffix("_owner") if owner.endswith("_owner") else None
        names = " ".join(f"{v}={prefix}_{s}" for v, s in ROLE_VARIABLES.items()) if prefix else ""
        raise SettingsError(
            f"this database's schema belongs to role {owner!r}, not {settings.owner_role!r}: start with the "
            f"role names it was set up with{': ' + names if names else ' (TENANTRY_*_ROLE)'}"
        )


def to_named_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def prepare(settings: Settings, data_dir: Path) -> str:
    """Migrate, make sure the demo workspace exists, and return a working demo token."""
    await ensure_database(settings.database_url)
    await refuse_other_roles(settings)
    await upgrade(settings, log=print)
    engine = create_engine(settings.app_url, settings, pool_size=1)
    try:
        provisioning = ProvisioningService(engine, settings)
        token_file = data_dir / "demo-token"
        workspace_id = await provisioning.find_workspace(DEMO_SLUG)
        if workspace_id is None:
            created = await provisioning.create_workspace(slug=DEMO_SLUG, name="Demo workspace", owner_email=DEMO_OWNER)
            await _seed_demo_products(engine, settings, created.workspace_id)
            _write_private(token_file, created.token)
            print(f"created workspace '{DEMO_SLUG}' with owner {DEMO_OWNER}")
            return created.token
        if token_file.exists():
            token = token_file.read_text(encoding="utf-8").strip()
            if is_well_formed(token):
                resolution = await resolve_token(engine, token_digest(token, settings.token_pepper))
                if resolution.principal is not None and resolution.principal.tenant_id == workspace_id:
                    return token
        membership_id = await provisioning.owner_membership(workspace_id)
        issued, _ = await provisioning.issue_token(workspace_id, membership_id, name="dev demo token")
        _write_private(token_file, issued.token)
        return issued.token
    finally:
        await engine.dispose()


async def _seed_demo_products(engine: AsyncEngine, settings: Settings, workspace_id: uuid.UUID) -> None:
    async with engine.begin() as connection:
        await set_transaction_context(
            connection,
            role=settings.tenant_role,
            tenant_id=workspace_id,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        for name, sku, price in DEMO_PRODUCTS:
            await connection.execute(
                text(
                    "INSERT INTO public.products (tenant_id, id, name, price_cents, currency, sku) "
                    "VALUES (:t, :id, :name, :price, 'EUR', :sku)"
                ),
                {"t": workspace_id, "id": uuid7(), "name": name, "price": price, "sku": sku},
            )


async def _prepare_or_explain(settings: Settings, data_dir: Path) -> str:
    try:
        return await prepare(settings, data_dir)
    except Exception as exc:
        message = describe_connection_error(exc, settings.admin_url)
        if message is None:
            raise
        raise DatabaseUnreachable(message) from None


def run_dev(data_dir: Path, host: str, port: int) -> None:
    import uvicorn

    from tenantry.app import create_app
    from tenantry.core.logs import configure_logging
    from tenantry.http.protocol import ProblemHttpToolsProtocol

    # The port first, and kept: a second `tenantry dev` on a taken port stops here, before it
    # starts a server, migrates or prints a token, and nobody can take the port meanwhile.
    listening = bind_listening_socket(host, port)
    try:
        settings = dev_settings(data_dir)
        if settings.metrics:
            ensure_port_free(settings.metrics_host, settings.metrics_port)
        token = asyncio.run(_prepare_or_explain(settings, data_dir))
        base = f"http://{host}:{port}"
        print(
            "\nTenantry is starting.\n"
            f"  demo token : {token}\n"
            f"  try        : curl -H 'Authorization: Bearer {token}' {base}/v1/products\n"
            f"  API docs   : {base}/schema  (Swagger UI: {base}/schema/swagger)\n"
            f"  data folder: {data_dir}\n",
            flush=True,
        )
        configure_logging(settings.log_level, settings.log_format)
        # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
        # embedded PostgreSQL's atexit hook stop the server instead of leaving it running.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        app = create_app(settings)
        if settings.metrics:  # one process: its own registry, on a port of its own
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port, settings.metrics_host, registry=app.state.metrics.registry)
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, http=ProblemHttpToolsProtocol
        )
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
