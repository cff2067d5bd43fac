"""An operator's first hour: every command answers a refused port, bad credentials, a missing
database, a refused TLS upgrade or a taken port with one line on stderr and exit status 2,
before it changes or prints anything; `tenantry serve` refuses to start when the app role cannot
log in; TLS is attempted only when the URL asks for it; `tenantry --version`.

Each command runs as the operator runs it: `python -m tenantry ...` in a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tenantry import __version__
from tenantry.cli import main
from tenantry.db.server import _asyncpg_dsn, embedded_server
from tenantry.settings import load_settings
from tests.support import TEST_PEPPER

# The first eight bytes a client sends to ask for TLS (PostgreSQL's SSLRequest).
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
COMMAND_TIMEOUT_S = 120


@dataclass
class Run:
    code: int
    out: str
    err: str


def _is_ours(variable: str) -> bool:
    return variable.startswith(("TENANTRY_", "DATABASE_URL", "PG"))


def tenantry(*args: str, env: dict[str, str]) -> Run:
    """The command in a process of its own, as the operator runs it (and with its logging)."""
    environment = {k: v for k, v in os.environ.items() if not _is_ours(k)}
    environment.update(env)
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-m", "tenantry", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """The same entry point in this process: the matrix below runs ~30 commands, and a process
    each costs seconds of imports. Logging goes to the root handlers, as in a real run."""

    def run(*args: str, env: dict[str, str]) -> Run:
        for variable in [v for v in os.environ if _is_ours(v)]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def assert_one_clear_line(run: Run, *needles: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, nothing printed that a run would print."""
    assert run.code == 2, (run.code, run.out, run.err)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("tenantry"), lines[0]
    assert "Traceback" not in run.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    for side_effect in ("tnt_", "tna_", "migrated", "created workspace", "Tenantry is starting", "seeded"):
        assert side_effect not in run.out, (side_effect, run.out)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def closed_port_url(database: str = "tenantry") -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/{database}"


class FakeServer:
    """A TCP server that answers like PostgreSQL without TLS ('N' to an SSLRequest), then hangs
    up; it records the first eight bytes of each connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.first_bytes: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    first = connection.recv(8)
                    self.first_bytes.append(first)
                    if first == SSL_REQUEST:
                        connection.sendall(b"N")
                        connection.recv(8)  # a client that falls back to plain text sends its startup
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[str, str]]:
    """A private PostgreSQL that checks passwords (SCRAM), with the app role `tenantry_app`.

    Yields (URL of the superuser with its right password, the app role's right password)."""
    parent = Path(tempfile.mkdtemp(prefix="tenantry-op-pg-"))
    server = embedded_server(parent / "data", cleanup="delete")
    trusted = str(server.get_uri())
    admin_password, app_password = "admin-" + uuid.uuid4().hex, "app-" + uuid.uuid4().hex

    async def require_passwords() -> None:
        dsn, kwargs = _asyncpg_dsn(trusted)
        connection = await asyncpg.connect(dsn, **kwargs)
        try:
            await connection.execute(f"ALTER ROLE postgres PASSWORD '{admin_password}'")
            await connection.execute(f"CREATE ROLE tenantry_app LOGIN PASSWORD '{app_password}'")
            hba = Path(await connection.fetchval("SHOW hba_file"))
            await asyncio.to_thread(hba.write_text, "local all all scram-sha-256\n", encoding="utf-8")
            await connection.execute("SELECT pg_reload_conf()")
        finally:
            await connection.close()

    try:
        asyncio.run(require_passwords())
        url = make_url(trusted).set(password=admin_password).render_as_string(hide_password=False)
        yield url, app_password
    finally:
        server.cleanup()  # stops the server, then removes its data
        shutil.rmtree(parent, ignore_errors=True)


def base_env(database_url: str, **more: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "TENANTRY_TOKEN_PEPPER": TEST_PEPPER,
        "TENANTRY_APP_PASSWORD": "not-the-password",
        "TENANTRY_DB_POOL_TIMEOUT_S": "5",
        **more,
    }


# Every command that touches the database, with arguments that would succeed on a good setup.
def commands(tmp: Path) -> dict[str, list[str]]:
    return {
        "db upgrade": ["db", "upgrade"],
        "serve": ["serve", "--port", str(free_port())],
        "dev": ["dev", "--data-dir", str(tmp / ".tenantry"), "--port", str(free_port())],
        "admin token create": ["admin", "token", "create", "--name", "ops"],
        "admin workspace create": [
            "admin",
            "workspace",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "o@acme.example",
        ],
        "audit": ["audit"],
        "probe": ["probe"],
        "seed": ["seed", "--workspaces", "1", "--products", "1", "--orders", "1"],
    }


COMMANDS = list(commands(Path("/")))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_port_is_one_line(command: str, tmp_path: Path, in_process: Callable[..., Run]) -> None:
    run = in_process(*commands(tmp_path)[command], env=base_env(closed_port_url()))
    assert_one_clear_line(run, "connection refused")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "dev"])  # dev creates its database
def test_a_missing_database_is_one_line(
    command: str, tmp_path: Path, server_url: str, in_process: Callable[..., Run]
) -> None:
    missing = f"tenantry_absent_{uuid.uuid4().hex[:8]}"
    url = make_url(server_url).set(database=missing).render_as_string(hide_password=False)
    run = in_process(*commands(tmp_path)[command], env=base_env(url))
    assert_one_clear_line(run, "does not exist")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password_is_one_line(
    command: str, tmp_path: Path, password_server: tuple[str, str], in_process: Callable[..., Run]
) -> None:
    url, _ = password_server
    wrong = make_url(url).set(password="wrong").render_as_string(hide_password=False)
    run = in_process(*commands(tmp_path)[command], env=base_env(wrong))
    assert_one_clear_line(run, "password authentication failed")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_tls_upgrade_is_one_line(
    command: str, tmp_path: Path, fake_server: FakeServer, in_process: Callable[..., Run]
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{fake_server.port}/tenantry?sslmode=require"
    run = in_process(*commands(tmp_path)[command], env=base_env(url))
    assert_one_clear_line(run, "TLS")
    assert SSL_REQUEST in fake_server.first_bytes


def test_serve_refuses_to_start_when_the_app_role_cannot_log_in(password_server: tuple[str, str]) -> None:
    """Superuser URL right, app password wrong: it used to start and answer 503 to everything."""
    url, _ = password_server
    run = tenantry("serve", "--port", str(free_port()), env=base_env(url))
    assert_one_clear_line(run, "cannot log in as the app role 'tenantry_app'", "password authentication failed")


def test_serve_refuses_a_database_without_the_schema(password_server: tuple[str, str]) -> None:
    url, app_password = password_server
    run = tenantry("serve", "--port", str(free_port()), env=base_env(url, TENANTRY_APP_PASSWORD=app_password))
    assert_one_clear_line(run, "tenantry db upgrade")


@pytest.mark.parametrize("command", ["dev", "serve"])
def test_a_taken_port_stops_before_anything_happens(command: str, tmp_path: Path, server_url: str) -> None:
    """A second `tenantry dev` used to migrate and print a token, then fail on the port."""
    fresh = f"tenantry_port_{uuid.uuid4().hex[:8]}"
    url = make_url(server_url).set(database=fresh).render_as_string(hide_password=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        args = {"dev": ["dev", "--data-dir", str(tmp_path / ".tenantry")], "serve": ["serve"]}[command]
        run = tenantry(*args, "--port", port, env=base_env(url))
    assert_one_clear_line(run, f"127.0.0.1:{port}", "already in use")

    async def exists() -> bool:
        dsn, kwargs = _asyncpg_dsn(server_url)
        connection = await asyncpg.connect(dsn, **kwargs)
        try:
            return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", fresh))
        finally:
            await connection.close()

    assert not asyncio.run(exists()), "the database was created before the port was checked"


def test_version() -> None:
    run = tenantry("--version", env={})
    assert (run.code, run.out.strip()) == (0, f"tenantry {__version__}")


# --- TLS only when the URL asks -------------------------------------------------------------------


def _first_message_of(connect: str, fake_server: FakeServer) -> bytes:
    assert fake_server.first_bytes, f"{connect} never reached the server"
    return fake_server.first_bytes[0]


async def test_the_engine_does_not_try_tls_unless_asked(fake_server: FakeServer) -> None:
    """asyncpg's default, sslmode=prefer, opens every connection with an SSLRequest."""
    from tenantry.db.engine import create_engine

    settings = load_settings(base_env(f"postgresql://postgres@127.0.0.1:{fake_server.port}/tenantry"))
    engine = create_engine(settings.app_url, settings, connect_timeout_s=5)
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the fake server hangs up after the first message
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert _first_message_of("the engine", fake_server) != SSL_REQUEST


async def test_the_cache_listener_and_server_helpers_do_not_try_tls_unless_asked(fake_server: FakeServer) -> None:
    from tenantry.db.server import server_answers

    settings = load_settings(base_env(f"postgresql://postgres@127.0.0.1:{fake_server.port}/tenantry"))
    with pytest.raises(Exception):  # noqa: B017, PT011
        await asyncpg.connect(settings.auth_listen_dsn, timeout=5)
    assert not await server_answers(settings.database_url)
    assert len(fake_server.first_bytes) == 2
    assert SSL_REQUEST not in fake_server.first_bytes


async def test_sslmode_require_is_honoured_by_the_engine(fake_server: FakeServer) -> None:
    from tenantry.db.engine import create_engine

    url = f"postgresql://postgres@127.0.0.1:{fake_server.port}/tenantry?sslmode=require"
    settings = load_settings(base_env(url))
    engine = create_engine(settings.app_url, settings, connect_timeout_s=5)
    try:
        with pytest.raises(Exception, match="SSL"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert fake_server.first_bytes == [SSL_REQUEST]
