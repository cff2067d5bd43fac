"""The `tenantry` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tenantry.admin.cli import add_admin_commands
from tenantry.settings import SettingsError, load_settings
from tenantry.tools.bench.cli import add_bench_command
from tenantry.tools.catalog_audit.cli import add_audit_command
from tenantry.tools.probe.cli import add_probe_command
from tenantry.tools.seed import add_seed_command


def _cmd_dev(args: argparse.Namespace) -> int:
    from tenantry.tools.devserver import run_dev

    run_dev(Path(args.data_dir).resolve(), args.host, args.port)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tenantry.core.logs import configure_logging

    overrides: dict[str, Any] = {}
    if args.workers:
        overrides["workers"] = args.workers
    settings = load_settings(**overrides)  # refuses to start without secrets outside dev mode
    if settings.dev_mode:
        raise SettingsError("`tenantry serve` is for production: unset TENANTRY_DEV (use `tenantry dev` instead)")
    configure_logging(settings.log_level)
    uvicorn.run(
        "tenantry.app:create_app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from tenantry.db.migrate import upgrade

    settings = load_settings(require=("app_password",))
    asyncio.run(upgrade(settings, log=print))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description="Tenantry: RLS-isolated multi-tenant API.")
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
