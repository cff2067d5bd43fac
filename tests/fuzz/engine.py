"""Run Schemathesis' engine (what `schemathesis run` runs) in process and collect what it found.

The engine runs the phases the configuration enables, with the documented checks on every
response. Its pytest plugin is not used: `schemathesis.pytest.from_fixture` reads a private
attribute pytest 9 no longer has, and the engine also runs the stateful phase the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemathesis import engine
from schemathesis.engine import Status, events
from schemathesis.schemas import BaseSchema


@dataclass
class FuzzReport:
    """Failures (one line and a curl command each), errors, and how much was exercised."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    scenarios: Counter[str] = field(default_factory=Counter)  # per phase
    cases: Counter[str] = field(default_factory=Counter)  # per phase
    statuses: Counter[int] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)
    # Stateful phase: links between operations (declared or inferred) it could follow
    transitions: int = 0

    def summary(self) -> str:
        return (
            f"{sum(self.cases.values())} requests in {sum(self.scenarios.values())} scenarios "
            f"({dict(self.cases)}) over {len(self.operations)} operations, {self.transitions} stateful links; statuses {dict(sorted(self.statuses.items()))}"
        )

    def problems(self) -> str:
        return "\n\n".join([*self.failures, *self.errors, self.summary()])


def run(schema: BaseSchema) -> FuzzReport:
    report = FuzzReport()
    seen: set[tuple[str, str, str]] = set()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted) and event.payload is not None:
            report.transitions = event.payload.transitions_selected
        elif isinstance(event, events.ScenarioFinished):
            _record(report, event, seen)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures += [
                f"{failure.operation}: {failure.title}\n{failure.message}" for failure in event.failures
            ]
    return report


def _record(report: FuzzReport, event: events.ScenarioFinished, seen: set[tuple[str, str, str]]) -> None:
    recorder = event.recorder
    phase = str(event.phase)
    report.scenarios[phase] += 1
    report.cases[phase] += len(recorder.cases)
    report.operations.add(recorder.label)
    for interaction in recorder.interactions.values():
        if interaction.response is not None:
            report.statuses[interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            # The same defect usually fails many cases; one reproduction each is enough to act on.
            key = (failure.operation or recorder.label, check.name, failure.title)
            if key in seen:
                continue
            seen.add(key)
            response = recorder.find_response(case_id=case_id)
            answer = f"answered {response.status_code}: {response.content[:300]!r}" if response else "no answer"
            report.failures.append(
                f"[{phase}] {key[0]} - {check.name}: {failure.title}\n{failure.message}\n{answer}\n"
                f"{check.failure_info.code_sample}"
            )
