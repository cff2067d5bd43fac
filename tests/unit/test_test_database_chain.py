"""Where the tests' PostgreSQL comes from (tests/support/servers.py), decided without a real engine.

The starters are stand-ins that record what was started and stopped; the real ones are a
testcontainers PostgresContainer and the embedded server, which the rest of the suite runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.support.servers import DEFAULT_IMAGE, ProvisionedServer, TestDatabaseUnavailable, provision_server

URL = "postgresql://postgres@db.example:5432/postgres"


class NoSuchImage(Exception):
    """What docker-py raises when the engine has no image and cannot pull one."""


@dataclass
class Machine:
    """A machine as the chain sees it: does an engine answer, does a container start."""

    engine: bool = False
    container_error: Exception | None = None
    said: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def engine_answers(self) -> bool:
        self.events.append("ping")
        return self.engine

    @contextmanager
    def start_container(self, image: str) -> Iterator[str]:
        self.events.append(f"container {image}")
        if self.container_error is not None:
            raise self.container_error
        try:
            yield f"postgresql://test@127.0.0.1:49153/test?image={image}"
        finally:
            self.events.append("container stopped")

    @contextmanager
    def start_embedded(self) -> Iterator[str]:
        self.events.append("embedded")
        try:
            yield "postgresql://embedded@/postgres?host=/tmp/x"
        finally:
            self.events.append("embedded stopped")

    def provision(self, **env: str) -> ProvisionedServer:
        with provision_server(
            env,
            say=self.said.append,
            engine_answers=self.engine_answers,
            start_container=self.start_container,
            start_embedded=self.start_embedded,
        ) as server:
            return server


def test_a_test_database_url_wins_and_nothing_else_is_tried() -> None:
    machine = Machine(engine=True)
    assert machine.provision(TEST_DATABASE_URL=URL) == ProvisionedServer("url", URL)
    assert machine.events == []
    assert machine.said == []


def test_a_container_is_used_when_an_engine_answers_and_it_starts_and_it_is_stopped_after() -> None:
    machine = Machine(engine=True)
    server = machine.provision()
    assert server.source == "container"
    assert f"image={DEFAULT_IMAGE}" in server.url
    assert DEFAULT_IMAGE == "postgres:18-alpine"
    assert machine.events == ["ping", f"container {DEFAULT_IMAGE}", "container stopped"]
    assert machine.said == []


def test_the_image_comes_from_tenantry_test_pg_image() -> None:
    machine = Machine(engine=True)
    server = machine.provision(TENANTRY_TEST_PG_IMAGE="tenantry/postgres:15-local")
    assert server.source == "container"
    assert machine.events[1] == "container tenantry/postgres:15-local"


def test_without_an_engine_the_embedded_server_is_used_without_a_word() -> None:
    machine = Machine(engine=False)
    assert machine.provision().source == "embedded"
    assert machine.events == ["ping", "embedded", "embedded stopped"]
    assert machine.said == []


def test_an_engine_whose_container_cannot_start_falls_back_with_one_clear_line() -> None:
    """The 761-errors run: the engine answered, `testcontainers/ryuk` could not be pulled."""
    machine = Machine(
        engine=True, container_error=NoSuchImage("404 Client Error: no such image: testcontainers/ryuk\nmore")
    )
    assert machine.provision().source == "embedded"
    assert machine.events == ["ping", f"container {DEFAULT_IMAGE}", "embedded", "embedded stopped"]
    assert len(machine.said) == 1
    line = machine.said[0]
    assert "\n" not in line
    assert "no container of postgres:18-alpine started" in line
    assert "NoSuchImage: 404 Client Error: no such image: testcontainers/ryuk" in line
    assert "using the embedded PostgreSQL instead" in line
    assert "TENANTRY_TEST_DB=embedded" in line


def test_a_failure_of_the_tests_themselves_is_not_taken_for_a_container_failure() -> None:
    machine = Machine(engine=True)
    with (
        pytest.raises(ZeroDivisionError),
        provision_server(
            {},
            say=machine.said.append,
            engine_answers=machine.engine_answers,
            start_container=machine.start_container,
            start_embedded=machine.start_embedded,
        ),
    ):
        _ = 1 / 0
    assert "embedded" not in machine.events
    assert machine.events[-1] == "container stopped"
    assert machine.said == []


@pytest.mark.parametrize("value", ["url", "URL", " url "])
def test_forcing_url_uses_it_and_needs_it(value: str) -> None:
    machine = Machine(engine=True)
    assert machine.provision(TENANTRY_TEST_DB=value, TEST_DATABASE_URL=URL).source == "url"
    with pytest.raises(TestDatabaseUnavailable, match="TENANTRY_TEST_DB=url needs TEST_DATABASE_URL"):
        machine.provision(TENANTRY_TEST_DB=value)
    assert machine.events == []


def test_forcing_the_container_ignores_a_url_and_never_falls_back() -> None:
    assert Machine(engine=True).provision(TENANTRY_TEST_DB="container", TEST_DATABASE_URL=URL).source == "container"

    no_engine = Machine(engine=False)
    with pytest.raises(TestDatabaseUnavailable, match="no Docker engine answers"):
        no_engine.provision(TENANTRY_TEST_DB="container")
    assert "embedded" not in no_engine.events

    cannot_start = Machine(engine=True, container_error=NoSuchImage("no such image: postgres:18-alpine"))
    with pytest.raises(TestDatabaseUnavailable, match=r"no container of postgres:18-alpine started: NoSuchImage"):
        cannot_start.provision(TENANTRY_TEST_DB="container")
    assert "embedded" not in cannot_start.events
    assert cannot_start.said == []


def test_forcing_embedded_skips_the_url_and_the_engine() -> None:
    machine = Machine(engine=True)
    assert machine.provision(TENANTRY_TEST_DB="embedded", TEST_DATABASE_URL=URL).source == "embedded"
    assert machine.events == ["embedded", "embedded stopped"]


def test_an_unknown_source_is_an_error_naming_the_choices() -> None:
    with pytest.raises(TestDatabaseUnavailable, match="use url, container or embedded"):
        Machine().provision(TENANTRY_TEST_DB="docker")
