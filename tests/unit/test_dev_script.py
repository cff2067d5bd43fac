"""scripts/dev.py test: the suite on xdist workers unless the caller chose, and "no tests" fails."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dev.py"
QUIET = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:faker")


@pytest.fixture
def dev(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("tenantry_dev_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ensure_environment", lambda: None)
    monkeypatch.setattr(module.os, "chdir", lambda _path: None)
    monkeypatch.delenv("TENANTRY_TEST_WORKERS", raising=False)
    return module


def _pytest_exits(monkeypatch: pytest.MonkeyPatch, dev: ModuleType, code: int) -> list[list[str]]:
    calls: list[list[str]] = []

    def call(command: list[str]) -> int:
        calls.append(command)
        return code

    monkeypatch.setattr(dev.subprocess, "call", call)
    return calls


@pytest.mark.parametrize(("pytest_code", "expected"), [(0, 0), (1, 1), (2, 2), (5, 1)])
def test_no_tests_collected_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, dev: ModuleType, pytest_code: int, expected: int
) -> None:
    calls = _pytest_exits(monkeypatch, dev, pytest_code)
    assert dev.main(["test", "-k", "nothing matches this"]) == expected
    assert calls[0][1:3] == ["-m", "pytest"]
    assert calls[0][-2:] == ["-k", "nothing matches this"]


def test_the_suite_runs_on_two_workers_by_default(monkeypatch: pytest.MonkeyPatch, dev: ModuleType) -> None:
    calls = _pytest_exits(monkeypatch, dev, 0)
    dev.main(["test"])
    assert calls[0][3:] == ["-n", "2", "--dist", "loadfile"]


@pytest.mark.parametrize(
    "args", [["-n", "0"], ["-n4"], ["--numprocesses=3"], ["--numprocesses", "1"], ["-p", "no:xdist"]]
)
def test_a_callers_own_worker_choice_is_left_alone(dev: ModuleType, args: list[str]) -> None:
    assert dev.pytest_arguments(["tests/unit", *args], {}) == ["tests/unit", *args]


def test_tenantry_test_workers_sets_the_count_and_0_turns_workers_off(dev: ModuleType) -> None:
    assert dev.pytest_arguments([], {"TENANTRY_TEST_WORKERS": "3"})[:2] == ["-n", "3"]
    assert dev.pytest_arguments(["-x"], {"TENANTRY_TEST_WORKERS": "0"}) == ["-x"]


def test_pytest_itself_fails_a_run_that_collected_no_test() -> None:
    """tests/conftest.py turns pytest's 5 into 1, so a wrapper that execs pytest keeps the failure."""
    run = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", *QUIET, "tests/support/chain_probe.py", "-k", "no_test_has_this_name"],
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "no test ran: that is a failure" in run.stdout
