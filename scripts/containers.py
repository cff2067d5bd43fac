#!/usr/bin/env python3
"""The container proof: the Dockerfile and compose.yaml, run for real (`python3 scripts/dev.py containers`).

1. A Docker engine: the one that answers (DOCKER_HOST or the default socket), else a quiet, private
   dockerd started here (scripts/container_engine.py), after installing Debian's docker.io and
   docker-compose when they are missing and this is root with apt. When neither works, it says so
   loudly and exits 0: the proof was skipped, not passed.
2. The local base images, unless --official: a Debian bookworm root file system made by
   debootstrap from the host's Debian mirror and loaded with `docker import`, then PostgreSQL 15,
   PgBouncer and Python 3.11 from Debian's packages (docker/local/). They are kept in the engine for
   the next run (`--rebuild-base` makes them again).
3. The application image from the repository's Dockerfile, with BASE_IMAGE set to the local Python
   image (--official: the Dockerfile's default, python:3.11-slim).
4. compose.yaml, unchanged, with the local images through its TENANTRY_*_IMAGE variables and fresh
   random secrets in a 0600 env file: up, every healthcheck green, `tenantry audit` (in the
   migration image) and `tenantry probe --base-url` (from this host, through the published port)
   with an admin token made by `tenantry admin token create` in the API container; then a
   workspace and a product, `restart api`, and `down` + `up` again (new containers, same volume):
   the product must read back unchanged each time.
5. tests/isolation through the container path of the test-database chain (TENANTRY_TEST_DB=container,
   with the local PostgreSQL image), once the tests' fixtures read those variables.
6. Teardown, whatever failed: the stack's containers, network and volumes; an engine started here
   is stopped and what it left on the host removed. An engine that was already running keeps
   running, with the images this run built.

Exit status: 0 proved (or skipped, loudly), 1 a step failed. docs/06-operations.md ("Docker") has more.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from container_engine import (  # next to this script, not in a package
    COMPOSE_PACKAGE,
    Daemon,
    EngineError,
    EngineUnavailable,
    compose_command,
    docker_answers,
    install_packages,
    missing_packages,
    start_daemon,
)

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "docker" / "local"
COMPOSE_FILE = ROOT / "compose.yaml"
PROJECT = "tenantry-proof"
# Every image and layer this proof builds carries this label, so it can prune its own leftovers
# on any engine without touching anyone else's images.
LABEL = "org.tenantry.proof=1"
DEBIAN_IMAGE = "tenantry-local/debian:bookworm"
# compose.yaml's image variables -> the local image each gets (their defaults are the official images).
LOCAL_IMAGES = {
    "TENANTRY_POSTGRES_IMAGE": ("tenantry-local/postgres:15", "postgres"),
    "TENANTRY_PGBOUNCER_IMAGE": ("tenantry-local/pgbouncer:1.18", "pgbouncer"),
    "TENANTRY_BASE_IMAGE": ("tenantry-local/python:3.11", "python"),
}
APP_IMAGE_VARIABLE = "TENANTRY_IMAGE"
APP_IMAGE = "tenantry:local"
PORT_VARIABLE = "TENANTRY_API_PORT"
OFFICIAL_TEST_IMAGE = "postgres:18"
SECRETS = ("POSTGRES_PASSWORD", "TENANTRY_APP_PASSWORD", "TENANTRY_TOKEN_PEPPER")
SERVICES = ("postgres", "migrate", "pgbouncer", "api")
JOBS = {"migrate"}  # one-shot services: done when exited 0; the others when healthy
DEFAULT_PORTS = range(15800, 15900)
TESTS = ROOT / "tests"
CACHE = Path(os.environ.get("TENANTRY_CONTAINERS_CACHE") or Path.home() / ".cache" / "tenantry-containers")
LOCK = Path(tempfile.gettempdir()) / "tenantry-containers.lock"


class ProofFailed(Exception):
    """A step of the proof failed; the message says which and why."""


def say(message: str) -> None:
    print(message, flush=True)


def banner(lines: Sequence[str]) -> None:
    bar = "!" * 94
    say("\n".join([bar, *(f"!!! {line}" for line in lines), bar]))


class Steps:
    """Prints each step as it starts and keeps its wall time for the summary."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        say(f"== containers: {name}")
        begun = time.monotonic()
        try:
            yield
        finally:
            self.times.append((name, time.monotonic() - begun))

    def summary(self) -> str:
        width = max((len(name) for name, _ in self.times), default=0)
        lines = [f"   {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.times]
        return "\n".join([*lines, f"   {'total (wall)':<{width}}  {time.monotonic() - self.started:7.1f} s"])


def run(
    command: Sequence[str | Path],
    env: dict[str, str],
    *,
    timeout: float,
    log: Path | None = None,
    check: bool = True,
    stdin: Any = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; its output is returned (or written to `log`). A failure raises ProofFailed."""
    args = [str(part) for part in command]
    try:
        if log is None:
            result = subprocess.run(
                args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=stdin, check=False
            )
        else:
            with log.open("w") as out:
                result = subprocess.run(
                    args,
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    stdin=stdin,
                    check=False,
                )
    except subprocess.TimeoutExpired:
        raise ProofFailed(f"`{' '.join(args)}` took longer than {timeout:.0f} s") from None
    if check and result.returncode:
        output = log.read_text(errors="replace") if log else (result.stdout or "") + (result.stderr or "")
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise ProofFailed(f"`{' '.join(args)}` exited with {result.returncode}:\n{tail}")
    return result


# -- images ----------------------------------------------------------------------------------------


def image_exists(env: dict[str, str], image: str) -> bool:
    return run(["docker", "image", "inspect", image], env, timeout=30, check=False).returncode == 0


def apt_mirrors() -> tuple[str, str]:
    """The Debian and Debian security mirrors the host's apt uses (the defaults if none is found)."""
    mirror = os.environ.get("TENANTRY_DEBIAN_MIRROR", "")
    security = ""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for path in sources:
        with contextlib.suppress(OSError):
            for uri in re.findall(r"(?:^URIs:|^deb)\s+(?:\[[^\]]*\]\s+)?(\S+)", path.read_text(), re.MULTILINE):
                uri = uri.rstrip("/")
                if uri.endswith("/debian-security"):
                    security = security or uri
                elif uri.endswith("/debian"):
                    mirror = mirror or uri
    return mirror or "http://deb.debian.org/debian", security or "http://deb.debian.org/debian-security"


def build_debian_base(env: dict[str, str], work: Path) -> None:
    """debootstrap a minimal bookworm and `docker import` it: the base every local image starts from."""
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise EngineUnavailable(
            f"{DEBIAN_IMAGE} is missing and cannot be made here: debootstrap needs root and the debootstrap "
            "package (or run with --official where an image registry is reachable)"
        )
    mirror, security = apt_mirrors()
    rootfs = CACHE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        say(f"   debootstrap --variant=minbase bookworm from {mirror}")
        run(
            ["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror],
            env,
            timeout=1200,
            log=work / "debootstrap.log",
        )
        # The image's apt uses the host's mirrors, with updates and security updates.
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: bookworm-security\nComponents: main\nSigned-By: {keyring}\n"
        )
        # Certificate authorities the host added trust in (a TLS-inspecting proxy's, for example):
        # images that install ca-certificates trust them too, so pip reaches PyPI as the host does.
        local_cas = rootfs / "usr/local/share/ca-certificates"
        local_cas.mkdir(parents=True, exist_ok=True)
        for certificate in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
            shutil.copy2(certificate, local_cas / certificate.name)
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        with subprocess.Popen(
            [shutil.which("tar") or "tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            run(
                ["docker", "import", "--change", f"LABEL {LABEL}", "--change", 'CMD ["bash"]', "-", DEBIAN_IMAGE],
                env,
                timeout=600,
                stdin=tar.stdout,
            )
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def docker_build(env: dict[str, str], tag: str, context: Path, args: dict[str, str], log: Path) -> None:
    """The classic builder (no BuildKit plugin is needed), on the host's network: with a quiet
    engine, containers on its bridge cannot reach a package mirror. Unchanged steps come from the
    engine's layer cache, so a warm run rebuilds only what changed."""
    command: list[str | Path] = ["docker", "build", "--network", "host", "--label", LABEL, "--tag", tag]
    for name, value in args.items():
        command += ["--build-arg", f"{name}={value}"]
    run([*command, context], {**env, "DOCKER_BUILDKIT": "0"}, timeout=1500, log=log)


def build_images(env: dict[str, str], work: Path, official: bool, rebuild_base: bool) -> dict[str, str]:
    """Build (or reuse) the images; returns compose's image variables for them."""
    variables = {APP_IMAGE_VARIABLE: APP_IMAGE}
    if not official:
        if rebuild_base or not image_exists(env, DEBIAN_IMAGE):
            build_debian_base(env, work)
        else:
            say(f"   reusing {DEBIAN_IMAGE} (--rebuild-base makes it again)")
        for variable, (tag, folder) in LOCAL_IMAGES.items():
            begun = time.monotonic()
            # In this order: the PgBouncer image starts from the PostgreSQL one.
            base = {"DEBIAN_IMAGE": DEBIAN_IMAGE, "POSTGRES_IMAGE": LOCAL_IMAGES["TENANTRY_POSTGRES_IMAGE"][0]}
            docker_build(env, tag, LOCAL / folder, base, work / f"build-{folder}.log")
            say(f"   {tag}: {time.monotonic() - begun:.1f} s")
            variables[variable] = tag
    base = {"BASE_IMAGE": variables["TENANTRY_BASE_IMAGE"]} if not official else {}
    begun = time.monotonic()
    docker_build(env, APP_IMAGE, ROOT, base, work / "build-app.log")
    say(
        f"   {APP_IMAGE} from Dockerfile (BASE_IMAGE={base.get('BASE_IMAGE', 'its default')}): {time.monotonic() - begun:.1f} s"
    )
    return variables


# -- the compose stack -----------------------------------------------------------------------------


class Stack:
    """compose.yaml as project PROJECT, with the secrets and image variables in a 0600 env file."""

    def __init__(
        self, compose: list[str], env: dict[str, str], work: Path, variables: dict[str, str], port: int
    ) -> None:
        self.compose_command = compose
        self.env = env
        self.port = port
        self.env_file = work / "compose.env"
        values = {name: secrets.token_urlsafe(32) for name in SECRETS}
        values.update(variables)
        values[PORT_VARIABLE] = str(port)
        descriptor = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.writelines(f"{name}={value}\n" for name, value in values.items())
        self.base_url = f"http://127.0.0.1:{port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            *self.compose_command,
            "--project-name",
            PROJECT,
            "--env-file",
            str(self.env_file),
            "--file",
            str(COMPOSE_FILE),
        ]
        return run([*command, *args], self.env, timeout=timeout, check=check)

    def states(self) -> dict[str, dict[str, Any]]:
        """Each service's container state, from the labels compose (v1 and v2) puts on its containers."""
        listing = run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}",
             "--filter", "label=com.docker.compose.oneoff=False"],
            self.env,
            timeout=60,
        ).stdout.split()  # fmt: skip
        if not listing:
            return {}
        template = '{{index .Config.Labels "com.docker.compose.service"}} {{json .State}}'
        inspected = run(["docker", "inspect", "--format", template, *listing], self.env, timeout=60, check=False)
        states = {}
        for line in inspected.stdout.splitlines():
            service, _, state = line.partition(" ")
            with contextlib.suppress(ValueError):
                states[service] = json.loads(state)
        return states

    def wait_ready(self, services: Sequence[str] = SERVICES, timeout: float = 240) -> None:
        """Until every service is healthy (a job: exited 0); a failed one stops the wait at once."""
        pending = list(services)
        deadline = time.monotonic() + timeout
        begun = time.monotonic()
        while pending:
            states = self.states()
            for service in list(pending):
                state = states.get(service, {})
                status, health = state.get("Status"), (state.get("Health") or {}).get("Status")
                if service in JOBS and status == "exited":
                    if state.get("ExitCode") != 0:
                        raise ProofFailed(f"{service} exited with {state.get('ExitCode')}:\n{self.logs(service)}")
                    say(f"   {service}: completed (exit 0) after {time.monotonic() - begun:.0f} s")
                    pending.remove(service)
                elif service not in JOBS and status == "running" and health == "healthy":
                    say(f"   {service}: healthy after {time.monotonic() - begun:.0f} s")
                    pending.remove(service)
                elif service not in JOBS and (health == "unhealthy" or status in {"exited", "dead"}):
                    raise ProofFailed(f"{service} is {health or status}:\n{self.logs(service)}")
            if pending and time.monotonic() > deadline:
                raise ProofFailed(f"not ready after {timeout:.0f} s: {', '.join(pending)}\n{self.logs(*pending)}")
            if pending:
                time.sleep(1)

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", "--tail", "40", *services, timeout=60, check=False)
        return (result.stdout + result.stderr).strip()

    def http(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)  # noqa: S310 - our own http:// URL
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:  # refused, reset, timed out
            raise ProofFailed(f"{method} {path}: {error}") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            raise ProofFailed(
                f"{method} {path} answered {status} with a body that is not JSON: {raw[:200]!r}"
            ) from None


def prove_stack(stack: Stack, steps: Steps, tenantry: Path) -> None:
    with steps.step("compose: config, up, healthchecks"):
        stack.compose("config", "--quiet")
        stack.compose("up", "--detach", "--no-build", timeout=600)
        stack.wait_ready()
        say(indent(stack.compose("logs", "--no-color", "migrate").stdout))
        status, _ = stack.http("GET", "/health/ready")
        if status != 200:
            raise ProofFailed(f"GET /health/ready through the published port answered {status}")
        say(f"   GET {stack.base_url}/health/ready from the host: 200")

    with steps.step("tenantry audit (in the migration image)"):
        result = stack.compose("run", "--rm", "--no-deps", "-T", "migrate", "tenantry", "audit", check=False)
        say(indent(result.stdout + result.stderr))
        if result.returncode:
            raise ProofFailed(f"tenantry audit exited with {result.returncode}")

    with steps.step("tenantry probe --base-url (from the host)"):
        made = stack.compose(
            "exec", "-T", "api", "tenantry", "admin", "token", "create", "--name", "container proof", "--days", "1"
        )
        match = re.search(r"^token: (tna_\S+)$", made.stdout, re.MULTILINE)
        if not match:
            raise ProofFailed(f"`tenantry admin token create` printed no token:\n{made.stdout}{made.stderr}")
        admin_token = match.group(1)
        probe_env = {**stack.env, "TENANTRY_PROBE_ADMIN_TOKEN": admin_token}
        result = run([tenantry, "probe", "--base-url", stack.base_url], probe_env, timeout=900, check=False)
        say(indent(result.stdout + result.stderr))
        if result.returncode:
            raise ProofFailed(f"tenantry probe exited with {result.returncode}")

    with steps.step("data survives: restart api, then new containers on the same volume"):
        slug = f"proof-{secrets.token_hex(4)}"
        made = stack.compose(
            "exec", "-T", "api", "tenantry", "admin", "--json", "workspace", "create",
            "--slug", slug, "--name", "Container proof", "--owner-email", f"owner@{slug}.tenantry.invalid",
        )  # fmt: skip
        created = json.loads(made.stdout)
        owner_token, workspace_id = created["owner_token"], created["workspace"]["id"]
        product = {"name": "Proof", "sku": "PROOF-1", "price_cents": 1234, "currency": "EUR"}
        status, body = stack.http("POST", "/v1/products", owner_token, product)
        if status != 201:
            raise ProofFailed(f"POST /v1/products answered {status}: {body}")
        path = f"/v1/products/{body['id']}"
        say(f"   workspace {slug} and product {body['id']} created")

        def check(moment: str) -> None:
            status, again = stack.http("GET", path, owner_token)
            if status != 200 or again != body:
                raise ProofFailed(f"{moment}: GET {path} answered {status}: {again}, expected {body}")
            status, workspace = stack.http("GET", f"/admin/v1/workspaces/{workspace_id}", admin_token)
            if status != 200 or workspace.get("slug") != slug:
                raise ProofFailed(f"{moment}: GET /admin/v1/workspaces/{workspace_id} answered {status}: {workspace}")
            say(f"   {moment}: the product reads back unchanged, both tokens still work")

        stack.compose("restart", "api")
        stack.wait_ready(["api"])
        check("after `restart api`")
        stack.compose("down", timeout=300)
        stack.compose("up", "--detach", "--no-build", timeout=600)
        stack.wait_ready()
        say(indent(stack.compose("logs", "--no-color", "migrate").stdout))
        check("after `down` and `up` (new containers, same volume)")


def indent(text: str) -> str:
    return "\n".join(f"   | {line}" for line in text.strip().splitlines())


# -- the test suite through the container path -----------------------------------------------------


def run_container_tests(env: dict[str, str], image: str, python: Path) -> None:
    """tests/isolation on a PostgreSQL container of `image`, through the test-database chain."""
    test_env = {key: value for key, value in env.items() if key != "TEST_DATABASE_URL"}
    test_env.update(
        TENANTRY_TEST_DB="container",
        TENANTRY_TEST_PG_IMAGE=image,
        # Ryuk, testcontainers' reaper, is an image from a registry; the fixtures stop their containers.
        TESTCONTAINERS_RYUK_DISABLED="true",
    )
    say(
        f"   TENANTRY_TEST_DB=container TENANTRY_TEST_PG_IMAGE={image} TESTCONTAINERS_RYUK_DISABLED=true pytest tests/isolation -x -q"
    )
    result = subprocess.run(
        [str(python), "-m", "pytest", "tests/isolation", "-x", "-q", "-p", "no:cacheprovider"],
        env=test_env,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    if result.returncode:
        raise ProofFailed(f"tests/isolation on the container path exited with {result.returncode}")


# -- the whole run ---------------------------------------------------------------------------------


def free_port(preferred: int | None) -> int:
    for port in [preferred] if preferred else DEFAULT_PORTS:
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port))
            return port
    raise ProofFailed(
        f"no free port for the API among {preferred or f'{DEFAULT_PORTS.start}-{DEFAULT_PORTS.stop - 1}'}"
    )


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """One proof at a time on a machine: they share the project name, the run folder and the cache."""
    # Read-only is enough for flock, and lets anyone open the file whoever made it.
    descriptor = os.open(LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"   another container proof holds {LOCK}: waiting for it")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


class Proof:
    """One run: what it started, so that the teardown removes exactly that, whatever failed."""

    def __init__(self, steps: Steps, work: Path) -> None:
        self.steps = steps
        self.work = work
        self.env: dict[str, str] = dict(os.environ)
        self.daemon: Daemon | None = None
        self.compose: list[str] = []
        self.stack: Stack | None = None

    def engine(self) -> None:
        """An engine that answers, else one started here; raises EngineUnavailable when none can be had."""
        with self.steps.step("engine"):
            running = docker_answers(self.env)
            wanted = missing_packages(need_daemon=not running, need_compose=compose_command(self.env) is None)
            if wanted:
                say(f"   installing {' '.join(wanted)} (apt-get)")
                reason = install_packages(wanted, self.work / "apt.log")
                if reason:
                    raise EngineUnavailable(f"{' '.join(wanted)} could not be installed: {reason}")
            compose = compose_command(self.env)
            if compose is None:
                raise EngineUnavailable(f"no `docker compose` and no `docker-compose` ({COMPOSE_PACKAGE})")
            self.compose = compose
            if running:
                say(f"   using the engine at {self.env.get('DOCKER_HOST', 'the default socket')}; it stays running")
            else:
                self.daemon = start_daemon(CACHE / "docker", CACHE / "dockerd.log")
                self.env["DOCKER_HOST"] = f"unix://{self.daemon.socket}"
                # Its containers are ours: any that a killed run left go now.
                leftovers = run(["docker", "ps", "-a", "-q"], self.env, timeout=60).stdout.split()
                if leftovers:
                    run(["docker", "rm", "-f", "-v", *leftovers], self.env, timeout=120)
                    say(f"   removed {len(leftovers)} container(s) left by an earlier run")
            template = "engine {{.Server.Version}}, client {{.Client.Version}}"
            versions = run(["docker", "version", "--format", template], self.env, timeout=30).stdout.strip()
            compose_version = run([*compose, "version", "--short"], self.env, timeout=30, check=False).stdout.strip()
            say(f"   {versions}; compose: `{' '.join(compose)}` {compose_version}")

    def prove(self, args: argparse.Namespace, tenantry: Path) -> None:
        self.engine()
        with self.steps.step("images"):
            variables = build_images(self.env, self.work, args.official, args.rebuild_base)
        self.stack = Stack(self.compose, self.env, self.work, variables, free_port(args.port))
        self.stack.compose("down", "--volumes", "--remove-orphans", timeout=300)  # what a killed run left
        prove_stack(self.stack, self.steps, tenantry)
        with self.steps.step("compose: down"):
            self.stack.compose("down", "--volumes", "--remove-orphans", timeout=300)
            self.stack = None
        with self.steps.step("tests/isolation through the container path"):
            if args.no_tests:
                say("   skipped (--no-tests)")
            elif not any("TENANTRY_TEST_PG_IMAGE" in path.read_text() for path in TESTS.rglob("*.py")):
                banner([
                    "tests/isolation through the container path was NOT run: the tests' fixtures do not",
                    "read TENANTRY_TEST_DB=container and TENANTRY_TEST_PG_IMAGE yet.",
                ])  # fmt: skip
            else:
                image = OFFICIAL_TEST_IMAGE if args.official else LOCAL_IMAGES["TENANTRY_POSTGRES_IMAGE"][0]
                run_container_tests(self.env, image, Path(sys.executable))

    def teardown(self, failed: bool) -> list[str]:
        """Remove what this run started; returns what could not be removed."""
        problems: list[str] = []
        with self.steps.step("teardown"):
            if self.stack is not None:
                if failed:
                    say(indent(self.stack.logs()))
                try:
                    self.stack.compose("down", "--volumes", "--remove-orphans", timeout=300)
                except ProofFailed as error:
                    problems.append(str(error))
            if self.compose:
                # Images of earlier builds of this proof that no tag points at any more (never anyone else's).
                run(
                    ["docker", "image", "prune", "--force", "--filter", f"label={LABEL}"],
                    self.env,
                    timeout=300,
                    check=False,
                )
            if self.daemon is not None:
                problems += self.daemon.stop()
                if not problems:
                    say(f"   dockerd stopped and its traces removed (images kept in {self.daemon.data_root})")
        return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 scripts/dev.py containers", description=__doc__.split("\n")[0])
    parser.add_argument("--official", action="store_true", help="the official images from a registry, not local ones")
    parser.add_argument("--rebuild-base", action="store_true", help="make the local base images again")
    parser.add_argument("--no-tests", action="store_true", help="skip tests/isolation through the container path")
    ports = f"{DEFAULT_PORTS.start}-{DEFAULT_PORTS.stop - 1}"
    parser.add_argument("--port", type=int, help=f"host port of the API (default: the first free one in {ports})")
    args = parser.parse_args(argv)
    tenantry = Path(sys.executable).parent / "tenantry"
    if not tenantry.exists():
        say("run this as `python3 scripts/dev.py containers`: it needs the virtual environment's `tenantry`")
        return 2
    # A TERM (CI's time limit, a person's kill) unwinds through the teardown, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    steps = Steps()
    work = Path(tempfile.mkdtemp(prefix="tenantry-containers-"))
    failure = skipped = ""
    interrupted = 0
    with exclusive():
        # A killed run leaves its folder; its env file holds the secrets of a stack that is gone.
        for stale in Path(tempfile.gettempdir()).glob("tenantry-containers-*/compose.env"):
            stale.unlink(missing_ok=True)
        proof = Proof(steps, work)
        try:
            proof.prove(args, tenantry)
        except KeyboardInterrupt:
            failure, interrupted = "interrupted (Ctrl-C)", 130
        except SystemExit as exit_request:  # the SIGTERM handler above
            failure, interrupted = "terminated (SIGTERM)", int(exit_request.code or 1)
        except EngineUnavailable as reason:
            skipped = str(reason)
            ci = "CI: " if os.environ.get("CI") == "true" else ""
            banner([
                f"{ci}The container proof was SKIPPED: {skipped}.",
                "compose.yaml, the Dockerfile and the container path of the tests were NOT run.",
            ])  # fmt: skip
        except (ProofFailed, EngineError) as error:
            failure = str(error)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the teardown short
            problems = proof.teardown(failed=bool(failure) or sys.exc_info()[0] is not None)
    (work / "compose.env").unlink(missing_ok=True)
    say("== containers: wall time per step\n" + steps.summary())
    if problems:
        banner(["The teardown did not leave the host as it was:", *problems])
    if failure or problems:
        say(f"== containers: FAILED: {failure or 'teardown'}\n   logs of this run: {work}")
        return interrupted or 1
    shutil.rmtree(work, ignore_errors=True)
    say(f"== containers: SKIPPED, not passed: {skipped}" if skipped else "== containers: passed")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
