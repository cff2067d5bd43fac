"""Schemathesis over the whole OpenAPI document, against the real app on the migrated database.

Tenant operations run with a workspace owner's token, admin operations with a platform admin
token, public ones with none. Every answer must be documented (status, content type, headers,
body schema) and none may be a server error, for valid and invalid inputs alike.
"""

from __future__ import annotations

from tests.fuzz.conftest import FuzzTarget, credentials_still_work, load_schema
from tests.fuzz.engine import run


def test_examples_coverage_and_fuzzing_phases_find_nothing(fuzz_target: FuzzTarget) -> None:
    schema = load_schema(fuzz_target, phases=("examples", "coverage", "fuzzing"))
    report = run(schema)
    print(report.summary())
    assert not report.failures, report.problems()
    assert not report.errors, report.problems()
    # Guards against a run that silently tested nothing (e.g. every request rejected as unauthenticated).
    assert len(report.operations) == len(list(schema.get_all_operations())), report.summary()
    assert report.statuses[200], report.summary()
    assert report.statuses[201], report.summary()
    assert credentials_still_work(fuzz_target)


def test_stateful_phase_finds_nothing(fuzz_target: FuzzTarget) -> None:
    schema = load_schema(fuzz_target, phases=("stateful",))
    report = run(schema)
    print(report.summary())
    assert not report.failures, report.problems()
    assert not report.errors, report.problems()
    assert report.transitions > 0, report.summary()
    assert report.statuses[200], report.summary()
    assert report.statuses[201], report.summary()
    assert credentials_still_work(fuzz_target)
