"""The `tenantry` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tenantry import __version__
from tenantry.admin.cli import add_admin_commands
from tenantry.db.connectivity import DatabaseUnreachable, describe_connection_error
from tenantry.settings import SettingsError, load_settings
from tenantry.tools.bench.cli import add_bench_command
from tenantry.tools.catalog_audit.cli import add_audit_command
from tenantry.tools.probe.cli import add_probe_command
from tenantry.tools.seed import add_seed_command
from tenantry.tools.serving import StartupError

EXIT_CONFIGURATION = 2


def _cmd_dev(args: argparse.Namespace) -> int:
    from tenantry.tools.devserver import run_dev

    run_dev(Path(args.data_dir).resolve(), args.host, args.port)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tenantry.core.logs import configure_logging
    from tenantry.http.protocol import HTTPTOOLS_PROTOCOL
    from tenantry.tools.serving import check_app_database, ensure_port_free, serve_multiprocess_metrics

    overrides: dict[str, Any] = {}
    if args.workers:
        overrides["workers"] = args.workers
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = load_settings(**overrides)  # refuses to start without secrets outside dev mode
    if settings.dev_mode:
        raise SettingsError("`tenantry serve` is for production: unset TENANTRY_DEV (use `tenantry dev` instead)")
    # Before anything starts: the port is free and the app role can log in to a migrated schema.
    ensure_port_free(settings.host, settings.port)
    asyncio.run(check_app_database(settings))
    configure_logging(settings.log_level, settings.log_format)
    if settings.metrics:
        serve_multiprocess_metrics(settings)
    uvicorn.run(
        "tenantry.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        access_log=False,
        loop="uvloop",
        # httptools, answering a request it cannot parse with problem+json (http/protocol.py).
        http=HTTPTOOLS_PROTOCOL,
    )
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from tenantry.db.migrate import upgrade

    settings = load_settings(require=("app_password",))
    try:
        asyncio.run(upgrade(settings, log=print))
    except Exception as exc:
        message = describe_connection_error(exc, settings.admin_url)
        if message is None:
            raise
        raise DatabaseUnreachable(message) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description="Tenantry: RLS-isolated multi-tenant API.")
    parser.add_argument("--version", action="version", version=f"tenantry {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the development service (embedded PostgreSQL without DATABASE_URL)")
    dev.add_argument("--data-dir", default=os.environ.get("TENANTRY_DATA_DIR", ".tenantry"))
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=_cmd_dev)

    serve = commands.add_parser("serve", help="run the API against DATABASE_URL (production)")
    serve.add_argument("--workers", type=int, help="worker processes (default: TENANTRY_WORKERS or 1)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_cmd_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply roles, migrations and policies (idempotent)")
    db_upgrade.set_defaults(func=_cmd_db_upgrade)

    add_admin_commands(commands)
    add_audit_command(commands)
    add_probe_command(commands)
    add_seed_command(commands)
    add_bench_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A configuration or connection problem is one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, StartupError, DatabaseUnreachable) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The one place connection failures become messages (db/connectivity.py); anything else
        # is a bug and keeps its traceback.
        message = describe_connection_error(exc)
        if message is None:
            raise
        return _fail(message)


def _fail(message: str) -> int:
    print(f"tenantry: {message}", file=sys.stderr)
    return EXIT_CONFIGURATION
