"""The results file's shape (docs/performance/results.json) and how rounds and pairs are judged."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec

from tenantry.tools.bench.load import LoadResult
from tenantry.tools.bench.scenarios import E_P99_TARGET_MS, Pair


class SideResult(msgspec.Struct, kw_only=True):
    label: str
    server: str
    requests: int
    rps: float  # all rounds' requests over all rounds' seconds
    p50_ms: float  # percentiles: the median of the rounds' percentiles
    p95_ms: float
    p99_ms: float
    errors: int
    rounds: list[LoadResult]
    # Database connections the server opened during the measured rounds (after the warm-up):
    # steady load at the pool's defaults should open none (no churn). None: not counted.
    backends_opened: int | None = None


class PairResult(msgspec.Struct, kw_only=True):
    key: str
    title: str
    metric: str
    goal: str
    baseline: SideResult
    subject: SideResult
    round_ratios: list[float]
    ratio: float
    target: float
    bound: str
    passed: bool
    verdict: str


class SingleResult(msgspec.Struct, kw_only=True):
    key: str
    title: str
    result: SideResult
    p99_target_ms: float
    passed: bool
    verdict: str


class WorkerMemory(msgspec.Struct, kw_only=True):
    server: str
    target: str
    workers: int
    peak_rss_mb: list[float]


class Machine(msgspec.Struct, kw_only=True):
    cpu: str
    cores: int
    ram_gb: float
    os: str
    python: str
    postgres: str
    postgres_settings: dict[str, str]
    server: str
    workers: int
    load_tool: str
    auth_cache_ttl_s: float = 60.0  # the API's token cache TTL (0: off); older results files predate it


class LayoutResult(msgspec.Struct, kw_only=True):
    label: str
    database: str
    workspaces: int
    products_per_workspace: int
    products: int
    seed_seconds: float
    created_workspaces: int


class BenchReport(msgspec.Struct, kw_only=True):
    generated_at: str
    command: str
    machine: Machine
    connections: int
    duration_s: float
    rounds: int
    warmup_s: float
    layouts: list[LayoutResult]
    pairs: list[PairResult]
    singles: list[SingleResult]
    memory: list[WorkerMemory]
    total_seconds: float
    notes: list[str] = msgspec.field(default_factory=list)  # warnings and the cache warming, as printed


def combine(label: str, server: str, rounds: Sequence[LoadResult]) -> SideResult:
    seconds = sum(r.seconds for r in rounds)
    requests = sum(r.requests for r in rounds)
    return SideResult(
        label=label,
        server=server,
        requests=requests,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p95_ms=statistics.median(r.p95_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        rounds=list(rounds),
        backends_opened=(
            None if any(r.backends_opened is None for r in rounds) else sum(r.backends_opened or 0 for r in rounds)
        ),
    )


def churn_verdict(sides: Sequence[SideResult]) -> str:
    """The no-churn target over every measured API side: no database connection opened after warm-up."""
    counted = [side for side in sides if side.backends_opened is not None]
    if not counted:
        return "not counted"
    opened = sum(side.backends_opened or 0 for side in counted)
    rounds = sum(len(side.rounds) for side in counted)
    where = f"{opened} connections opened over {rounds} measured runs of {len(counted)} API sides"
    return f"{where}: PASS" if opened == 0 else f"{where}: MISS"


def _value(result: LoadResult | SideResult, metric: str) -> float:
    if metric == "p95":
        return result.p95_ms
    return result.rps if metric == "throughput" else result.p50_ms


def judge_pair(pair: Pair, baseline: Sequence[LoadResult], subject: Sequence[LoadResult]) -> PairResult:
    base, subj = (
        combine(pair.baseline.label, pair.baseline.server, baseline),
        combine(pair.subject.label, pair.subject.server, subject),
    )
    round_ratios = [
        _value(s, pair.metric) / _value(b, pair.metric) if _value(b, pair.metric) else 0.0
        for b, s in zip(baseline, subject, strict=True)
    ]
    denominator = _value(base, pair.metric)
    ratio = _value(subj, pair.metric) / denominator if denominator else 0.0
    errors = base.errors + subj.errors
    within = ratio >= pair.target if pair.bound == "min" else ratio <= pair.target
    passed = within and errors == 0
    return PairResult(
        key=pair.key,
        title=pair.title,
        metric=pair.metric,
        goal=pair.goal,
        baseline=base,
        subject=subj,
        round_ratios=round_ratios,
        ratio=ratio,
        target=pair.target,
        bound=pair.bound,
        passed=passed,
        verdict=pair_verdict(ratio, pair.target, pair.bound, errors),
    )


def pair_verdict(ratio: float, target: float, bound: str, errors: int) -> str:
    sign = ">=" if bound == "min" else "<="
    text = f"{ratio:.3f} (target {sign} {target:.3f})"
    if bound == "min" and ratio < target:
        text += f": MISS, short by {target - ratio:.3f} ({(target - ratio) / target:.0%} below the target)"
    elif bound == "max" and ratio > target:
        text += f": MISS, over by {ratio - target:.3f} ({(ratio - target) / target:.0%} above the target)"
    else:
        text += ": PASS"
    if errors:
        text += f"; {errors} errors: MISS"
    return text


def judge_single(key: str, title: str, side: SideResult) -> SingleResult:
    problems = []
    if side.errors:
        problems.append(f"{side.errors} errors")
    if side.p99_ms >= E_P99_TARGET_MS:
        over = side.p99_ms - E_P99_TARGET_MS
        problems.append(f"p99 {side.p99_ms:.1f} ms, {over:.1f} ms ({over / E_P99_TARGET_MS:.0%}) over")
    verdict = "PASS" if not problems else "MISS: " + "; ".join(problems)
    return SingleResult(
        key=key, title=title, result=side, p99_target_ms=E_P99_TARGET_MS, passed=not problems, verdict=verdict
    )
