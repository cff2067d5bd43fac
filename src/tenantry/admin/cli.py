"""`tenantry admin ...`: bootstrap and operations from a shell, through the same services as /admin/v1.

It connects like the API (the app login role, the platform role per transaction) and audits as
`cli:<os user>`. Secrets it creates (admin tokens, owner tokens) are printed once. Any failure
prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.admin.accounts import AdminTokenService, UserPasswordService
from tenantry.auth.principal import AdminPrincipal, current_admin
from tenantry.core.errors import DomainError, InvalidInput
from tenantry.core.plans import PLAN_FIELDS
from tenantry.db.citus import TRANSFER_MODES
from tenantry.db.connectivity import database_failure
from tenantry.db.engine import create_engine
from tenantry.settings import Settings, load_settings
from tenantry.tenancy.pagination import PageRequest, cursor_key
from tenantry.tenancy.session import platform_session_factory
from tenantry.workspaces.export import EXPORT_MEDIA_TYPE, WorkspaceExporter
from tenantry.workspaces.plans import WorkspacePlanService
from tenantry.workspaces.schemas import PlanOut, PlanUpdate, WorkspaceCreate, WorkspaceFilters, WorkspaceOut
from tenantry.workspaces.service import AdminWorkspaceService

EXIT_FAILURE = 2


@dataclass
class Operator:
    """What a command gets: settings, one platform session, and the services built on it."""

    settings: Settings
    session: AsyncSession
    session_factory: async_sessionmaker[AsyncSession]
    json: bool

    @property
    def workspaces(self) -> AdminWorkspaceService:
        key = cursor_key(self.settings.token_pepper)
        return AdminWorkspaceService(self.session, self.settings, key)

    def out(self, value: msgspec.Struct, *lines: str) -> None:
        """The struct as JSON with --json, else the human lines."""
        if self.json:
            print(msgspec.json.format(msgspec.json.encode(value).decode()))
        else:
            for line in lines:
                print(line)


Command = Callable[[Operator, argparse.Namespace], Awaitable[None]]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def _run(command: Command, settings: Settings, args: argparse.Namespace) -> None:
    engine = create_engine(settings.app_url, settings, pool_size=1)
    reset = current_admin.set(AdminPrincipal(token_id=None, name=f"cli:{_os_user()}"))
    try:
        factory = platform_session_factory(engine, settings)
        async with factory() as session:
            await command(Operator(settings, session, factory, bool(args.json)), args)
    finally:
        current_admin.reset(reset)
        await engine.dispose()


def _fail(message: str) -> int:
    print(f"tenantry: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _domain_message(exc: DomainError) -> str:
    errors = exc.extra.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return f"{exc.detail} ({errors[0].get('field')}: {errors[0].get('message')})"
    return exc.detail


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings()  # a SettingsError is reported by tenantry.cli.main (exit 2)
        try:
            asyncio.run(_run(command, settings, args))
        except DomainError as exc:
            return _fail(_domain_message(exc))
        except msgspec.ValidationError as exc:
            return _fail(f"invalid value: {exc}")
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            # The operator is at the console: one line, never a traceback (db/connectivity.py).
            return _fail(database_failure(exc, settings.app_url))
        return 0

    return run


def _workspace_line(workspace: WorkspaceOut) -> str:
    return f"{workspace.id}  {workspace.slug:<32} {workspace.status:<17} {workspace.name}"


def _workspace_lines(workspace: WorkspaceOut) -> list[str]:
    fields = msgspec.structs.asdict(workspace)
    return [f"{name}: {value}" for name, value in fields.items() if name != "metadata"] + [
        f"metadata: {msgspec.json.encode(workspace.metadata).decode()}"
    ]


# -- admin tokens and users --------------------------------------------------------------------


async def token_create(op: Operator, args: argparse.Namespace) -> None:
    new = await AdminTokenService(op.session, op.settings).issue(args.name, args.days)
    print(f"id: {new.id}")
    print(f"expires_at: {new.expires_at.isoformat()}")
    print(f"token: {new.token}")
    print("Store the token now: it is shown only this once.", file=sys.stderr)


async def token_revoke(op: Operator, args: argparse.Namespace) -> None:
    await AdminTokenService(op.session, op.settings).revoke(_uuid(args.id))
    print(f"revoked admin token {args.id}")


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat it: "):
        raise InvalidInput("The two passwords differ.")
    return first


async def user_set_password(op: Operator, args: argparse.Namespace) -> None:
    user_id = await UserPasswordService(op.session).set_password(args.email, _read_password())
    print(f"password set for user {user_id}")


# -- workspaces --------------------------------------------------------------------------------


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a uuid.") from None


def _metadata(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise InvalidInput("--metadata must be a JSON object.") from None
    if not isinstance(value, dict):
        raise InvalidInput("--metadata must be a JSON object.")
    return value


async def workspace_create(op: Operator, args: argparse.Namespace) -> None:
    body = {
        "slug": args.slug,
        "name": args.name,
        "owner_email": args.owner_email,
        "owner_display_name": args.owner_display_name,
        "external_id": args.external_id,
        "metadata": _metadata(args.metadata),
    }
    created = await op.workspaces.create(msgspec.convert(body, WorkspaceCreate))
    op.out(
        created,
        *_workspace_lines(created.workspace),
        f"owner_user_id: {created.owner.user_id} ({'created' if created.owner.user_created else 'existing user'})",
        f"owner_token_expires_at: {created.owner_token_expires_at.isoformat()}",
        f"owner_token: {created.owner_token}",
    )
    print("Hand the owner token over now: it is shown only this once.", file=sys.stderr)


async def workspace_list(op: Operator, args: argparse.Namespace) -> None:
    cursor: str | None = None
    while True:
        page = await op.workspaces.list(PageRequest(limit=100, cursor=cursor), WorkspaceFilters(status=args.status))
        for workspace in page.data:
            print(msgspec.json.encode(workspace).decode() if op.json else _workspace_line(workspace))
        if not page.has_more:
            return
        cursor = page.next_cursor


async def workspace_show(op: Operator, args: argparse.Namespace) -> None:
    service = op.workspaces
    workspace = await service.get(await service.resolve(args.workspace))
    op.out(workspace, *_workspace_lines(workspace))


def _transition(name: str) -> Command:
    async def command(op: Operator, args: argparse.Namespace) -> None:
        service = op.workspaces
        workspace_id = await service.resolve(args.workspace)
        if name == "schedule_deletion":
            workspace = await service.schedule_deletion(workspace_id, args.days)
        else:
            workspace = await getattr(service, name)(workspace_id)
        op.out(workspace, _workspace_line(workspace))

    return command


async def workspace_purge(op: Operator, args: argparse.Namespace) -> None:
    service = op.workspaces
    report = await service.purge(await service.resolve(args.workspace), confirm_slug=args.confirm_slug)
    op.out(report, _workspace_line(report.workspace), *(f"  {t}: {n} rows deleted" for t, n in report.deleted.items()))


async def workspace_purge_due(op: Operator, args: argparse.Namespace) -> None:
    reports = await op.workspaces.purge_due()
    for report in reports:
        total = sum(report.deleted.values())
        print(
            msgspec.json.encode(report).decode()
            if op.json
            else f"purged {report.workspace.slug} ({report.workspace.id}): {total} rows"
        )
    if not op.json:
        print(f"{len(reports)} workspace(s) purged", file=sys.stderr)


async def workspace_usage(op: Operator, args: argparse.Namespace) -> None:
    service = op.workspaces
    usage = await service.usage(await service.resolve(args.workspace))
    op.out(
        usage,
        f"members: {usage.members.total} ({usage.members.active} active)",
        f"tokens: {usage.tokens.total} ({usage.tokens.active} active)",
        *(f"rows.{table}: {count}" for table, count in usage.rows.items()),
    )


async def workspace_export(op: Operator, args: argparse.Namespace) -> None:
    """One <table>.jsonl per tenant table plus manifest.json, with a progress line per table."""
    service = op.workspaces
    workspace_id = await service.resolve(args.workspace)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a one-shot CLI loop: blocking file I/O is fine
    manifest = await service.export_manifest(workspace_id, lambda table: f"{table}.jsonl", EXPORT_MEDIA_TYPE)
    exporter = WorkspaceExporter(op.session_factory)
    # Every table from one REPEATABLE READ, READ ONLY transaction: the files are one instant.
    async with exporter.snapshot(workspace_id) as snapshot:
        manifest.exported_at = await snapshot.taken_at()
        for entry in manifest.tables:
            table = await service.start_table_export(workspace_id, entry.name)
            rows = 0
            with (out / entry.href).open("wb") as file:
                async for chunk in snapshot.chunks(table):
                    file.write(chunk)
                    rows += chunk.count(b"\n")
            entry.rows = rows  # what the file holds: the snapshot's rows, not the manifest's count
            print(f"{entry.name}: {rows} rows -> {out / entry.href}", file=sys.stderr)
    (out / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    print(f"exported {manifest.workspace.slug} to {out}")


_KEEP = object()  # an option of `plan` that was not given


async def workspace_isolate(op: Operator, args: argparse.Namespace) -> None:
    """Citus: the workspace in shards of its own (docs/scale-out.md). Runs as the migrating account
    (DATABASE_URL), which owns what Citus splits; the workspace is found like any other command's."""
    from sqlalchemy import NullPool
    from sqlalchemy.ext.asyncio import create_async_engine

    from tenantry.db.citus import NotACluster, isolate_tenant

    workspace_id = await op.workspaces.resolve(args.workspace)
    engine = create_async_engine(op.settings.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            placements = await connection.run_sync(isolate_tenant, str(workspace_id), args.transfer_mode)
    except NotACluster as exc:
        raise InvalidInput(str(exc)) from None
    finally:
        await engine.dispose()
    for placement in placements:
        print(f"{placement.table}: shard {placement.shard_id} on {placement.node}")


def _limit(value: str) -> int | None:
    """A limit on the command line: a whole number, or `default` to drop the workspace's own."""
    if value == "default":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'default', got {value!r}") from None


def _plan_lines(plan: PlanOut) -> list[str]:
    lines = []
    for name in PLAN_FIELDS:
        own = getattr(plan.plan, name)
        lines.append(f"{name}: {getattr(plan.effective, name)}" + ("" if own is not None else " (default)"))
    return lines


async def workspace_plan(op: Operator, args: argparse.Namespace) -> None:
    """Show the plan; with limits given, change them first (audited like the API's PATCH)."""
    workspace_id = await op.workspaces.resolve(args.workspace)
    service = WorkspacePlanService(op.session, op.settings)
    changes: dict[str, int | None] = {name: None for name in PLAN_FIELDS} if args.reset else {}
    for name in PLAN_FIELDS:
        value = getattr(args, name)
        if value is not _KEEP:
            changes[name] = value
    if changes:
        plan = await service.update(workspace_id, msgspec.convert(changes, PlanUpdate))
    else:
        plan = await service.get(workspace_id)
    op.out(plan, *_plan_lines(plan))


# -- the parser --------------------------------------------------------------------------------


def _workspace_command(
    parent: Any, name: str, command: Command, help_text: str, *, ref: bool = True
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
    if ref:
        parser.add_argument("workspace", help="workspace id or slug")
    parser.set_defaults(func=_runner(command))
    return parser


def add_admin_commands(commands: Any) -> None:
    """Add `admin` to the `tenantry` parser's subcommands."""
    admin = commands.add_parser("admin", help="platform administration: workspaces, admin tokens, users")
    admin.add_argument("--json", action="store_true", help="print results as JSON")
    groups = admin.add_subparsers(dest="admin_group", required=True)

    token = groups.add_parser("token", help="platform admin tokens (tna_)").add_subparsers(
        dest="admin_command", required=True
    )
    create = token.add_parser("create", help="issue an admin token; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--days", type=int, default=90, help="lifetime in days (default 90, at most 366)")
    create.set_defaults(func=_runner(token_create))
    revoke = token.add_parser("revoke", help="revoke an admin token by id")
    revoke.add_argument("id")
    revoke.set_defaults(func=_runner(token_revoke))

    user = groups.add_parser("user", help="global users").add_subparsers(dest="admin_command", required=True)
    password = user.add_parser("set-password", help="set a password (stdin if piped, else prompted twice)")
    password.add_argument("--email", required=True)
    password.set_defaults(func=_runner(user_set_password))

    ws = groups.add_parser("workspace", help="workspaces").add_subparsers(dest="admin_command", required=True)
    new = _workspace_command(ws, "create", workspace_create, "create a workspace and its owner", ref=False)
    new.add_argument("--slug", required=True)
    new.add_argument("--name", required=True)
    new.add_argument("--owner-email", required=True)
    new.add_argument("--owner-display-name", default="")
    new.add_argument("--external-id")
    new.add_argument("--metadata", help="a JSON object")
    listing = _workspace_command(ws, "list", workspace_list, "list workspaces", ref=False)
    listing.add_argument("--status", choices=("active", "suspended", "pending_deletion", "purged"))
    _workspace_command(ws, "show", workspace_show, "show one workspace")
    _workspace_command(ws, "suspend", _transition("suspend"), "suspend: its tokens get 403 until reactivated")
    _workspace_command(ws, "reactivate", _transition("reactivate"), "lift a suspension")
    schedule = _workspace_command(
        ws, "schedule-deletion", _transition("schedule_deletion"), "schedule the purge (default in 30 days)"
    )
    schedule.add_argument("--days", type=int, default=30, help="days until the purge, 1 to 365")
    _workspace_command(ws, "restore", _transition("restore"), "cancel a scheduled deletion")
    purge = _workspace_command(ws, "purge", workspace_purge, "hard-delete a workspace scheduled for deletion")
    purge.add_argument("--confirm-slug", help="the workspace's slug, to purge before its purge date")
    _workspace_command(ws, "purge-due", workspace_purge_due, "purge every workspace past its purge date", ref=False)
    export = _workspace_command(ws, "export", workspace_export, "export every tenant table as JSON Lines")
    export.add_argument("--out", required=True, help="directory for <table>.jsonl files and manifest.json")
    _workspace_command(ws, "usage", workspace_usage, "members, tokens and rows per table")
    isolate = _workspace_command(
        ws, "isolate", workspace_isolate, "Citus: move the workspace into shards of its own (docs/scale-out.md)"
    )
    isolate.add_argument(
        "--transfer-mode",
        choices=TRANSFER_MODES,
        default="auto",
        help="Citus shard_transfer_mode: auto (logical replication when possible) or block_writes",
    )
    plan = _workspace_command(
        ws, "plan", workspace_plan, "show the request limits; with options, change them (docs/06-operations.md)"
    )
    for name in PLAN_FIELDS:
        plan.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_limit,
            default=_KEEP,
            metavar="N|default",
            help="this workspace's own value, or 'default' for the deployment's",
        )
    plan.add_argument("--reset", action="store_true", help="every limit back to the deployment's default first")
