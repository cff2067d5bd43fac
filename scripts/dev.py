#!/usr/bin/env python3
"""The two commands of the quickstart, for a machine with only Python >= 3.11 and pip.

    python3 scripts/dev.py serve   # the service, on an embedded PostgreSQL unless DATABASE_URL is set
    python3 scripts/dev.py test    # the whole test suite

Each makes a virtual environment in .venv on first use (and again when pyproject.toml changes),
installs Tenantry with its test extras into it, and runs the real command inside it. Extra
arguments pass through: `serve --port 8001`, `test -k products -x`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("TENANTRY_VENV", ROOT / ".venv"))
STAMP = VENV / ".tenantry-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


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
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_environment()
    os.chdir(ROOT)
    if command == "serve":
        return subprocess.call([str(BIN / "tenantry"), "dev", *rest])
    code = subprocess.call([str(BIN / "python"), "-m", "pytest", *rest])
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass.", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
