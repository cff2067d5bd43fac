"""`tenantry audit`: exit 0 when the catalog keeps the contract, 1 with findings, 2 when it cannot run.

It needs no secret and no privilege: the catalog is readable by every role. It connects with
DATABASE_URL (or --database-url), in a read-only transaction, and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg
from sqlalchemy import NullPool, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from tenantry.db.connectivity import database_failure
from tenantry.settings import Settings, load_settings
from tenantry.tools.catalog_audit.audit import AuditReport, audit_database
from tenantry.tools.catalog_audit.catalog import AuditError, AuditRoles
from tenantry.tools.catalog_audit.report import exit_code, render_json, render_text

EXIT_ERROR = 2
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 30_000


async def run_audit(settings: Settings, allowed_definers: list[str]) -> AuditReport:
    connect_args: dict[str, Any] = {
        "timeout": CONNECT_TIMEOUT_S,
        "server_settings": {"application_name": "tenantry-audit"},
    }
    if not settings.db_statement_cache:  # behind PgBouncer older than 1.21, as for the API
        connect_args.update(statement_cache_size=0, prepared_statement_cache_size=0)
    engine = create_async_engine(settings.admin_url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SET TRANSACTION READ ONLY"))
            await connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            report = await audit_database(
                connection, AuditRoles.from_settings(settings), allowed_definers=allowed_definers
            )
            await connection.rollback()
            return report
    finally:
        await engine.dispose()


def _fail(message: str) -> int:
    print(f"tenantry audit: {message}", file=sys.stderr)
    return EXIT_ERROR


def audit_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"database_url": args.database_url} if args.database_url else {}
    # No secret is needed to read the catalog; a SettingsError is reported by tenantry.cli (exit 2).
    settings = load_settings(require=(), **overrides)
    try:
        report = asyncio.run(run_audit(settings, args.allow_definer))
    except AuditError as exc:
        return _fail(str(exc))
    except (SQLAlchemyError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
        return _fail(f"cannot read the catalog: {database_failure(exc, settings.admin_url)}")
    print(render_json(report) if args.json else render_text(report))
    return exit_code(report)


def add_audit_command(commands: Any) -> None:
    """Add `audit` to the `tenantry` parser's subcommands."""
    audit = commands.add_parser(
        "audit",
        help="check the live catalog against the isolation contract (exit 1 on findings)",
        description="Read the live catalog and report every place it breaks the tenant isolation contract. "
        "Exit status: 0 clean, 1 findings, 2 could not run.",
    )
    audit.add_argument("--json", action="store_true", help='print {"ok", "checked", "findings"} as JSON')
    audit.add_argument("--database-url", help="the database to audit (default: DATABASE_URL)")
    audit.add_argument(
        "--allow-definer",
        action="append",
        default=[],
        metavar="SCHEMA.NAME",
        help="also allow this SECURITY DEFINER function (repeatable; a bare name means schema public)",
    )
    audit.set_defaults(func=audit_command)
