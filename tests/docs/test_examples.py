"""The shell examples of docs/ run against a live development service, as a reader runs them.

One `tenantry dev` (embedded PostgreSQL, data folder `.tenantry` in a scratch folder that plays
the repository folder) serves the pages in reading order, so each page finds what the earlier
ones made, as a reader following the docs would. Every `sh` block runs; what it prints must
still contain what the page shows, and annotated curl lines must answer their status. How blocks
are read and compared: tests/docs/examples.py. When an answer changes, this test fails and names
the page, the line and the difference: fix the page (or the code).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.docs.examples import Example, Outcome, examples, explain, missing_lines

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# In reading order: the token guide signs in with the password the admin guide sets.
PAGES = ["02-quickstart.md", "05-api-guide.md", "07-admin-guide.md", "08-token-guide.md"]
DOCUMENTED = "127.0.0.1:8000"
READERS_FOLDER = "/home/you/tenantry"  # the repository folder in the docs' sample output
PAGE_TIMEOUT_S = 900


@dataclass
class Service:
    folder: Path  # plays the repository folder: `.tenantry/` and `.venv` are here
    address: str  # host:port, in place of the documented 127.0.0.1:8000
    startup: str  # what `tenantry dev` printed before serving


def _environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "DATABASE_URL", "PG"))}
    environment["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    return environment


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    # Not under pytest's basetemp (tests/conftest.py: the embedded server's own user must reach it).
    folder = Path(tempfile.mkdtemp(prefix="tenantry-docs-"))
    (folder / ".venv").symlink_to(sys.prefix)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = folder / "service.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", "tenantry", "dev", "--data-dir", ".tenantry", "--port", str(port)],
            cwd=folder,
            env=_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield Service(folder, f"127.0.0.1:{port}", log.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def run_page(page: list[Example], service: Service) -> list[Outcome]:
    """All of a page's runnable blocks in one bash, each between markers; curl's answers' status
    lines are kept per block (through a `curl` function that adds -D)."""
    scratch = Path(tempfile.mkdtemp(prefix="docs-run-", dir=service.folder))
    script = [
        "exec 2>&1",
        f"__docs={scratch}",
        'echo 0 > "$__docs/n"',
        # An example that dumps the headers itself (-D) keeps its own; its status reads as 0, unknown.
        'curl() { local n=$(( $(cat "$__docs/n") + 1 )) rc; echo $n > "$__docs/n";'
        ' local dump="$__docs/h.$(cat "$__docs/block").$n";'
        ' case " $* " in *" -D "*|*" --dump-header "*) echo "HTTP/0 0" > "$dump"; command curl "$@";;'
        ' *) command curl -D "$dump" "$@";; esac; }',
    ]
    runnable = [(i, example) for i, example in enumerate(page) if example.command.directive not in ("skip", "server")]
    for index, example in runnable:
        script += [
            f'echo {index} > "$__docs/block"',
            f"echo '@@docs-begin {index}@@'",
            example.command.text.replace(DOCUMENTED, service.address),
            "__rc=$?",
            "echo",
            f'echo "@@docs-end {index} $__rc@@"',
        ]
    done = subprocess.run(  # noqa: S603 - the docs' own examples
        ["bash", "-c", "\n".join(script)],  # noqa: S607 - bash from PATH, as a reader's shell
        cwd=service.folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT_S,
        check=False,
    )
    if dump := os.environ.get("TENANTRY_DOCS_DUMP"):  # for editing a page: what each block printed
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"{page[0].command.line}-{len(page)}.out").write_text(done.stdout)
    outcomes = []
    for index, example in runnable:
        found = re.search(rf"@@docs-begin {index}@@\n(.*?)\n@@docs-end {index} (\d+)@@", done.stdout, re.DOTALL)
        if found is None:
            outcomes.append(Outcome(example, f"(block did not finish)\n{done.stdout[-2000:]}", -1))
            continue
        statuses = []
        for header_file in sorted(scratch.glob(f"h.{index}.*"), key=lambda p: int(p.suffix[1:])):
            lines = [line for line in header_file.read_text().splitlines() if line.startswith("HTTP/")]
            if lines:
                statuses.append(int(lines[-1].split()[1]))
        outcomes.append(Outcome(example, found.group(1), int(found.group(2)), statuses))
    return outcomes


def problems_of(outcome: Outcome, service: Service) -> list[str]:
    example, output = outcome.example, outcome.output
    found: list[str] = []
    shown = example.shown
    if shown is not None and example.command.directive != "unchecked":
        expected = shown.text.replace(DOCUMENTED, service.address)
        if missing := missing_lines(expected, output):
            detail = explain(expected, output)
            found.append(
                f"shown output (line {shown.line}) not printed: {missing[:3]}{' -- ' + detail if detail else ''}"
            )
    if example.expected_statuses is not None and example.command.directive != "unchecked":
        promised = [status for status, _ in example.expected_statuses]
        answered = outcome.statuses
        if len(answered) != len(promised) or any(
            p not in (None, a) and a != 0 for p, a in zip(promised, answered, strict=False)
        ):
            found.append(f"curl answered {answered}, the comments promise {promised}")
        for _, slug in example.expected_statuses:
            if slug and f"/problems/{slug}" not in output and slug not in output:
                found.append(f"no '{slug}' problem in the output")
    if shown is None and example.expected_statuses is None and outcome.exit_code != 0:
        found.append(f"exited with {outcome.exit_code}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", PAGES)
def test_the_examples_of_the_page_still_answer_as_shown(name: str, service: Service) -> None:
    page = examples(DOCS / name)
    report: list[str] = []
    for example in page:
        if example.command.directive == "server" and example.shown is not None:
            expected = example.shown.text.replace(DOCUMENTED, service.address).replace(
                READERS_FOLDER, str(service.folder)
            )
            if missing := missing_lines(expected, service.startup):
                report.append(f"{name}:{example.command.line}: the service's start printed no {missing[:3]}")
    for outcome in run_page(page, service):
        for problem in problems_of(outcome, service):
            first = outcome.example.command.text.strip().splitlines()[0][:100]
            report.append(
                f"{name}:{outcome.example.command.line} `{first}`: {problem}\n    output: {outcome.output[:600]!r}"
            )
    ran = sum(1 for example in page if example.command.directive not in ("skip", "server"))
    assert ran > 0
    assert not report, "\n".join(report)
