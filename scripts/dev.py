#!/usr/bin/env python3
"""The commands of the quickstart, for a machine with only Python >= 3.11 and pip.

    python3 scripts/dev.py serve   # the service, on an embedded PostgreSQL unless DATABASE_URL is set
    python3 scripts/dev.py test    # the whole test suite, on two workers (TENANTRY_TEST_WORKERS)
    python3 scripts/dev.py check   # ruff, ruff format, mypy --strict and the import layers, as CI runs them
    python3 scripts/dev.py lock    # re-resolve requirements/*.lock after a change to pyproject.toml
    python3 scripts/dev.py containers  # the Dockerfile and compose.yaml, run for real (scripts/containers.py)

`serve` becomes the server (exec), so a signal sent to it reaches the server. Each makes a
virtual environment in .venv on first use (and again when pyproject.toml or a lockfile
changes), installs the exact versions of requirements/dev.lock into it (hash-checked) and Tenantry
itself, and runs the real command inside it. Extra arguments pass through: `serve --port 8001`,
`test -k products -x`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("TENANTRY_VENV", ROOT / ".venv"))
STAMP = VENV / ".tenantry-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
# The runtime lock (what the image installs) and the development lock (runtime + tests + checks),
# resolved for every platform and Python >= 3.11, with hashes.
APP_LOCK = ROOT / "requirements" / "app.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
CHECKS = (
    ("ruff", "check", "src", "tests", "migrations", "scripts"),
    ("ruff", "format", "--check", "src", "tests", "migrations", "scripts"),
    ("mypy",),
    ("lint-imports",),
)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", DEV_LOCK):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Tenantry needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if STAMP.exists() and STAMP.read_text().strip() == _fingerprint():
        return
    if not (BIN / "python").exists():
        print(f"creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    print("installing Tenantry and its dependencies (first run only) ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    # Exactly the locked versions, hash-checked; then Tenantry itself, which adds nothing new.
    subprocess.run([*pip, "install", "--require-hashes", "-r", str(DEV_LOCK)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(_fingerprint())


def lock() -> int:
    """Re-resolve both lockfiles from pyproject.toml; the development lock is held to the runtime one."""
    common = ["--universal", "--python-version", "3.11", "--generate-hashes", "--no-header", "--quiet"]
    uv = [str(BIN / "uv"), "pip", "compile", str(ROOT / "pyproject.toml"), *common]
    subprocess.run([*uv, "--upgrade", "-o", str(APP_LOCK)], check=True)
    subprocess.run([*uv, "--upgrade", "--extra", "dev", "-c", str(APP_LOCK), "-o", str(DEV_LOCK)], check=True)
    print(f"wrote {APP_LOCK.relative_to(ROOT)} and {DEV_LOCK.relative_to(ROOT)}")
    return 0


def check() -> int:
    failed = []
    for command in CHECKS:
        print("$", " ".join(command), flush=True)
        if subprocess.call([str(BIN / command[0]), *command[1:]]) != 0:
            failed.append(" ".join(command))
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def pytest_arguments(rest: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """pytest's arguments: the caller's, on TENANTRY_TEST_WORKERS xdist workers (default 2, 0 for
    none) unless they chose themselves (`-n`, `--numprocesses`, `-p no:xdist`)."""
    chosen = any(
        arg in ("-n", "--numprocesses", "no:xdist") or arg.startswith(("-n", "--numprocesses=")) for arg in rest
    )
    workers = environ.get("TENANTRY_TEST_WORKERS", "2").strip() or "2"
    if chosen or workers == "0":
        return rest
    # Each worker takes whole modules, so module fixtures (the fuzzer's app, the audit's database)
    # are built once; tests/conftest.py gives the workers one server and a database each.
    return ["-n", workers, "--dist", "loadfile", *rest]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "check", "lock", "containers"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    os.chdir(ROOT)
    if command == "lock":
        return lock()
    if command == "check":
        return check()
    if command == "serve":
        # Replace this process with the server, so that SIGTERM and SIGINT reach `tenantry dev`
        # itself (it stops its embedded PostgreSQL on either); a child would be left running.
        tenantry = str(BIN / "tenantry")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(tenantry, [tenantry, "dev", *rest])
    if command == "containers":
        return subprocess.call([str(BIN / "python"), str(ROOT / "scripts" / "containers.py"), *rest])
    code = subprocess.call([str(BIN / "python"), "-m", "pytest", *pytest_arguments(rest)])
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass.", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
