"""PACKAGING: the wheel carries migrations/ and policies/, and finds them once installed.

`tenantry db upgrade` must work from a plain `pip install`, so the wheel bundles both folders
under tenantry/_bundled/ and `tenantry.db.paths` must prefer them over a checkout. This builds
the real wheel and installs it into a fresh virtual environment (slow: tens of seconds).
Run just this with `pytest tests/unit/test_packaging.py` or `-k packaging`.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_FILES = sorted(p.name for p in (REPO_ROOT / "policies").glob("*.sql"))
MIGRATION_FILES = ["env.py", "versions/0001_core.py"]


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the checkout or our venv leak in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(  # noqa: S603 - fixed command lines of our own
        args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(REPO_ROOT)], cwd=out)
    (built,) = out.glob("tenantry-*.whl")
    return built


@pytest.mark.slow
def test_packaging_wheel_bundles_migrations_policies_and_the_console_script(wheel: Path) -> None:
    assert POLICY_FILES, "the checkout has no policies/*.sql"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points_name = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(entry_points_name).decode()

    for name in MIGRATION_FILES:
        assert f"tenantry/_bundled/migrations/{name}" in names, name
    for name in POLICY_FILES:
        assert f"tenantry/_bundled/policies/{name}" in names, name
    bundled_policies = {n.rsplit("/", 1)[1] for n in names if n.startswith("tenantry/_bundled/policies/")}
    assert bundled_policies == set(POLICY_FILES)
    assert "tenantry/db/paths.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("tests/", "tenantry/tests/")) for n in names)

    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert parser["console_scripts"]["tenantry"].strip() == "tenantry.cli:main"


@pytest.mark.slow
def test_packaging_installed_wheel_finds_its_bundled_folders(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)

    site_packages = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    ).resolve()
    printed = _run(
        [
            str(python),
            "-c",
            "from tenantry.db.paths import migrations_dir, policies_dir; print(migrations_dir(), policies_dir())",
        ],
        cwd=tmp_path,
    ).split()

    assert len(printed) == 2, printed
    migrations, policies = (Path(p) for p in printed)
    assert migrations == site_packages / "tenantry" / "_bundled" / "migrations"
    assert policies == site_packages / "tenantry" / "_bundled" / "policies"
    assert REPO_ROOT not in migrations.parents
    assert (migrations / "env.py").is_file()
    assert (migrations / "versions" / "0001_core.py").is_file()
    assert sorted(p.name for p in policies.glob("*.sql")) == POLICY_FILES
    script = env_dir / ("Scripts/tenantry.exe" if os.name == "nt" else "bin/tenantry")
    assert script.exists()
