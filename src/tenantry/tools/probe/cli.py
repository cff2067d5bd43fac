"""`tenantry probe`: exit 0 when no finding, 1 with findings, 2 when it cannot run (as `tenantry audit`).

Without --base-url it builds the app in process from the environment (DATABASE_URL and the
secrets, like `tenantry serve`) and issues itself a platform admin token for the run, revoked at
the end. With --base-url it probes a running deployment, with the admin token from
--admin-token or TENANTRY_PROBE_ADMIN_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from tenantry.db.connectivity import database_failure
from tenantry.tools.probe.prober import ProbeError
from tenantry.tools.probe.report import exit_code, render_json, render_text

EXIT_ERROR = 2
ADMIN_TOKEN_ENV = "TENANTRY_PROBE_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a token


async def _probe_in_process(progress: bool) -> Any:
    from tenantry.admin.accounts import AdminTokenService
    from tenantry.app import create_app
    from tenantry.db.engine import create_engine
    from tenantry.settings import load_settings
    from tenantry.tenancy.session import platform_session_factory
    from tenantry.tools.probe.samples import SAMPLES
    from tenantry.tools.probe.targets import probe_app

    settings = load_settings()  # a SettingsError is reported by tenantry.cli (exit 2)
    engine = create_engine(settings.app_url, settings, pool_size=1)
    try:
        sessions = platform_session_factory(engine, settings)
        async with sessions() as session:
            issued = await AdminTokenService(session, settings).issue("tenantry probe", days=1)
        try:
            return await probe_app(create_app(settings), issued.token, SAMPLES, progress=progress)
        finally:
            async with sessions() as session:
                await AdminTokenService(session, settings).revoke(issued.id)
    finally:
        await engine.dispose()


def probe_command(args: argparse.Namespace) -> int:
    from tenantry.tools.probe.samples import SAMPLES
    from tenantry.tools.probe.targets import probe_deployment

    progress = not args.json
    try:
        if args.base_url:
            token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV, "")
            if not token:
                return _fail(f"--base-url needs an admin token: --admin-token or {ADMIN_TOKEN_ENV}")
            report = asyncio.run(
                probe_deployment(args.base_url, token, SAMPLES, request_timeout=args.timeout, progress=progress)
            )
        else:
            report = asyncio.run(_probe_in_process(progress))
    except ProbeError as exc:
        return _fail(str(exc))
    except httpx.HTTPError as exc:
        return _fail(f"the API stopped answering: {exc!r}")
    except (SQLAlchemyError, OSError) as exc:
        return _fail(f"cannot run: {database_failure(exc, _app_url())}")
    print(render_json(report) if args.json else render_text(report))
    return exit_code(report)


def _app_url() -> URL | None:
    from tenantry.settings import SettingsError, load_settings

    try:
        return load_settings().app_url
    except SettingsError:
        return None


def _fail(message: str) -> int:
    print(f"tenantry probe: {message}", file=sys.stderr)
    return EXIT_ERROR


def add_probe_command(commands: Any) -> None:
    """Add `probe` to the `tenantry` parser's subcommands."""
    probe = commands.add_parser(
        "probe",
        help="probe every tenant route across two fresh workspaces over HTTP (exit 1 on findings)",
        description="Make two workspaces with one object of every resource each, then, as A, try every tenant "
        "route with B's ids, cursors, Idempotency-Keys and tenant-selecting headers, queries and body fields. "
        "Exit status: 0 clean, 1 findings, 2 could not run.",
    )
    probe.add_argument("--json", action="store_true", help='print {"ok", "checked", "findings", "notes"} as JSON')
    probe.add_argument("--base-url", help="probe this running deployment instead of the app in process")
    probe.add_argument("--admin-token", help=f"a platform admin token (tna_...) for --base-url (or {ADMIN_TOKEN_ENV})")
    probe.add_argument("--timeout", type=float, default=30.0, help="seconds per request against --base-url")
    probe.set_defaults(func=probe_command)
