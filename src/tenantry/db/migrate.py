"""`tenantry db upgrade`: roles, versioned migrations, then repeatable policies, in one transaction.

Policies are repeatable migrations (docs/04-security-model.md): each file in policies/ is applied when its checksum
changed, and all of them are applied whenever a versioned migration ran (a recreated table loses
its policies). A failure rolls everything back, so no table is ever left half-secured.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, NullPool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

from tenantry.db.citus import distribute, has_citus, split_statements
from tenantry.db.paths import migrations_dir, policies_dir
from tenantry.db.roles import ensure_roles
from tenantry.settings import Settings

# Any {{name}} without braces or spaces inside; SQL array literals like '{{1,2},{3,4}}' contain
# braces and commas and so never match.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s,]+)\s*\}\}")

CHECKSUM_TABLE = """
CREATE TABLE IF NOT EXISTS public.tenantry_policy_checksums (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass
class UpgradeReport:
    revision_before: str | None = None
    revision_after: str | None = None
    policies_applied: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)

    @property
    def migrations_ran(self) -> bool:
        return self.revision_before != self.revision_after


def render_policy(source: str, settings: Settings) -> str:
    """Fill {{role}} placeholders with the configured role names; unknown placeholders are errors."""
    names = {
        "owner_role": settings.owner_role,
        "tenant_role": settings.tenant_role,
        "platform_role": settings.platform_role,
        "app_role": settings.app_role,
    }

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in names:
            raise ValueError(f"unknown placeholder {{{{{key}}}}} in a policy file")
        return f'"{names[key]}"'

    return _PLACEHOLDER.sub(substitute, source)


def policy_files() -> list[Path]:
    return sorted(policies_dir().glob("*.sql"))


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _apply_policies(connection: Connection, settings: Settings, *, force_all: bool) -> list[str]:
    connection.execute(text(CHECKSUM_TABLE))
    recorded: dict[str, str] = {
        name: checksum
        for name, checksum in connection.execute(text("SELECT name, checksum FROM public.tenantry_policy_checksums"))
    }
    applied = []
    for path in policy_files():
        rendered = render_policy(path.read_text(encoding="utf-8"), settings)
        checksum = hashlib.sha256(rendered.encode()).hexdigest()
        if not force_all and recorded.get(path.name) == checksum:
            continue
        # One statement at a time, each as a simple query (its `$$` bodies intact): Citus refuses
        # DDL on a distributed table sent as several statements in one string (db/citus.py).
        driver = connection.connection.driver_connection
        assert driver is not None  # an open connection always has one
        for statement in split_statements(rendered):
            await_only(driver.execute(statement))
        connection.execute(
            text(
                "INSERT INTO public.tenantry_policy_checksums (name, checksum) VALUES (:n, :c) "
                "ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()"
            ),
            {"n": path.name, "c": checksum},
        )
        applied.append(path.name)
    return applied


def upgrade_sync(connection: Connection, settings: Settings) -> UpgradeReport:
    """Everything `db upgrade` does, on a connection that is inside one transaction."""
    report = UpgradeReport()
    if not has_citus(connection):
        # On Citus roles_sync() has done it, committed. Doing it again here would propagate its
        # schema grant to the workers as the login account, and the policies' schema statements
        # that follow as the owner role: two connections of one transaction, the second waiting
        # for the first's lock on each worker, a distributed deadlock (on a database whose schema
        # Citus already tracks, i.e. any upgrade that runs a migration after the first).
        ensure_roles(connection, settings)
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('tenantry.migrate'))"))
    connection.execute(text(f'SET LOCAL ROLE "{settings.owner_role}"'))
    if has_citus(connection):
        # A migration or policy file that adds a trigger to a distributed table (0009's key
        # triggers, the auth-change triggers) needs it; docs/scale-out.md says what they do there.
        connection.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
        # One connection per worker for the whole upgrade: a migration that reads a distributed
        # table in parallel (0012's backfill) leaves later DDL on reference tables refused
        # ("cannot modify table ... because there was a parallel operation on a distributed table").
        connection.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    report.revision_before = _current_revision(connection)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    report.revision_after = _current_revision(connection)
    report.policies_applied = _apply_policies(connection, settings, force_all=report.migrations_ran)
    report.distributed = distribute(connection)
    return report


def roles_sync(connection: Connection, settings: Settings) -> None:
    """On Citus, the roles in a transaction of their own, committed before the upgrade.

    Citus opens its connections to the workers as the current role, and a role created in the
    upgrade's own transaction does not exist there yet for a new connection.
    """
    if has_citus(connection):
        ensure_roles(connection, settings)


# Roles are cluster-wide, and an advisory lock only serializes upgrades of one database: two
# upgrades of two databases on one server can update the same role row at once, and one of them
# fails with "tuple concurrently updated" (XX000). Its transaction rolled back whole, so it is
# simply run again.
_ROLE_RACE = "tuple concurrently updated"
_ATTEMPTS = 5


async def upgrade(settings: Settings, log: Callable[[str], None] | None = None) -> UpgradeReport:
    """Apply roles, migrations and policies to the database of `settings.database_url`."""
    engine = create_async_engine(settings.admin_url, poolclass=NullPool)
    try:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with engine.connect() as connection:
                    await connection.run_sync(roles_sync, settings)
                    await connection.commit()
                    report = await connection.run_sync(upgrade_sync, settings)
                    await connection.commit()
                break
            except DBAPIError as exc:
                if _ROLE_RACE not in str(exc.orig) or attempt == _ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * attempt)
    finally:
        await engine.dispose()
    if log:
        if report.migrations_ran:
            log(f"migrated schema {report.revision_before or 'empty'} -> {report.revision_after}")
        else:
            log(f"schema already at {report.revision_after}")
        log(f"policies applied: {', '.join(report.policies_applied) or 'none (unchanged)'}")
        for line in report.distributed:
            log(f"citus: {line}")
    return report
