"""What each scenario sends, what it compares, and the targets from the issue.

Pairs (a-d) run their two sides interleaved (A B A B ...) at the same connections and duration,
so noise on a shared machine hits both; the ratio per pair is what the targets judge. Singles (e)
are judged on their own numbers: no errors and p99 under 100 ms.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from tenantry.tools.bench.database import BenchWorkspace
from tenantry.tools.bench.load import RequestSpec

ServerRole = Literal["app", "raw", "app_many", "app_limited", "app_s", "litestar_s", "z_single", "z_citus"]
Metric = Literal["throughput", "p50", "p95"]

LIST_PATH = "/v1/products?limit=20"
RAW_LIST_PATH = "/raw/products?limit=20"
RAW_NORLS_PATH = "/raw/products-norls?limit=20"
E_WORKSPACES = 50
E_P99_TARGET_MS = 100.0
# Unique per request: the load generator replaces {n} with run nonce, connection or thread, counter.
CREATE_BODY = (
    '{"name":"Bench product","description":"made by tenantry bench","price_cents":1999,"currency":"EUR","sku":"B{n}"}'
)


@dataclass(frozen=True)
class Side:
    label: str
    server: ServerRole
    specs: tuple[RequestSpec, ...]


@dataclass(frozen=True)
class Pair:
    key: str
    title: str
    metric: Metric
    baseline: Side
    subject: Side
    target: float
    # "min": subject/baseline must be at least target (throughput); "max": at most (latency).
    bound: Literal["min", "max"]
    goal: str


@dataclass(frozen=True)
class Single:
    key: str
    title: str
    side: Side


def list_specs(workspaces: Sequence[BenchWorkspace]) -> tuple[RequestSpec, ...]:
    return tuple(RequestSpec("GET", LIST_PATH, token=w.token) for w in workspaces)


def raw_specs(workspaces: Sequence[BenchWorkspace], path: str) -> tuple[RequestSpec, ...]:
    return tuple(RequestSpec("GET", path, tenant=str(w.workspace_id)) for w in workspaces)


def pair_a(few: Sequence[BenchWorkspace]) -> Pair:
    return Pair(
        key="a",
        title="Full stack vs raw asyncpg: list 20 products",
        metric="throughput",
        baseline=Side("raw asyncpg handler", "raw", raw_specs(few, RAW_LIST_PATH)),
        subject=Side("GET /v1/products?limit=20", "app", list_specs(few)),
        target=0.75,
        bound="min",
        goal="full stack >= 0.75 x raw asyncpg throughput",
    )


def pair_b(few: Sequence[BenchWorkspace]) -> Pair:
    return Pair(
        key="b",
        title="Cost of RLS: products vs a copy without RLS (raw handler)",
        metric="throughput",
        baseline=Side("no RLS, WHERE tenant_id", "raw", raw_specs(few, RAW_NORLS_PATH)),
        subject=Side("RLS products", "raw", raw_specs(few, RAW_LIST_PATH)),
        target=0.95,
        bound="min",
        goal="RLS >= 0.95 x no-RLS throughput",
    )


def pair_c(few: Sequence[BenchWorkspace]) -> Pair:
    return Pair(
        key="c",
        title="Cost of token verification: /v1/whoami vs /health/live",
        metric="throughput",
        baseline=Side("GET /health/live (no token)", "app", (RequestSpec("GET", "/health/live"),)),
        subject=Side(
            "GET /v1/whoami (token)", "app", tuple(RequestSpec("GET", "/v1/whoami", token=w.token) for w in few)
        ),
        # "adds at most 5%" per request: 1 / 1.05 of the unauthenticated throughput.
        target=round(1 / 1.05, 4),
        bound="min",
        goal="token verification adds <= 5% per request",
    )


def pair_d(few: Sequence[BenchWorkspace], many: Sequence[BenchWorkspace]) -> Pair:
    return Pair(
        key="d",
        title=f"Tenant count: list p50 at {len(many):,} vs {len(few):,} workspaces",
        metric="p50",
        baseline=Side(f"{len(few):,} workspaces", "app", list_specs(few)),
        subject=Side(f"{len(many):,} workspaces", "app_many", list_specs(many)),
        target=1.2,
        bound="max",
        goal=f"p50 at {len(many):,} workspaces <= 1.2 x p50 at {len(few):,}",
    )


def interleave(groups: Sequence[Sequence[RequestSpec]]) -> tuple[RequestSpec, ...]:
    """Round-robin over workspaces, so consecutive requests go to different tenants."""
    return tuple(spec for row in zip_longest(*groups) for spec in row if spec is not None)


def singles_e(workspaces: Sequence[BenchWorkspace], product_ids: dict[uuid.UUID, list[uuid.UUID]]) -> list[Single]:
    chosen = [w for w in workspaces if product_ids.get(w.workspace_id)][:E_WORKSPACES]
    gets = [
        [RequestSpec("GET", f"/v1/products/{pid}", token=w.token) for pid in product_ids[w.workspace_id]]
        for w in chosen
    ]
    creates = [RequestSpec("POST", "/v1/products", token=w.token, body=CREATE_BODY) for w in chosen]
    mixed = []
    for w, get_specs in zip(chosen, gets, strict=True):
        # Per workspace: 4 lists, 4 gets, 2 creates: 80% reads, 20% writes.
        lists = [RequestSpec("GET", LIST_PATH, token=w.token)] * 4
        writes = [RequestSpec("POST", "/v1/products", token=w.token, body=CREATE_BODY)] * 2
        mixed.append(interleave([lists, (get_specs * 4)[:4], writes]))
    n = len(chosen)
    return [
        Single("e.get", f"Get by id ({n} workspaces)", Side("GET /v1/products/{id}", "app", interleave(gets))),
        Single("e.create", f"Create ({n} workspaces)", Side("POST /v1/products", "app", tuple(creates))),
        Single(
            "e.mixed", f"Mixed 80/20 read/write ({n} workspaces)", Side("list/get/create", "app", interleave(mixed))
        ),
    ]


# s: the full stack against the same framework's limit (raw_litestar.py: Litestar handlers running
# the API's statements on raw asyncpg), per endpoint, at each workers x connections of the issue.
S_TARGETS = {"list": 0.5, "get": 0.5, "create": 0.4}
S_WORKERS = (1, 2)
S_CONNECTIONS = (16, 64)
RAW_CREATE_PATH = "/raw/products"


def pairs_s(
    workspaces: Sequence[BenchWorkspace],
    product_ids: dict[uuid.UUID, list[uuid.UUID]],
    *,
    workers: int,
    connections: int,
) -> list[Pair]:
    """list, get and create: `app_s` (the API) against `litestar_s` (the framework's limit)."""
    chosen = [w for w in workspaces if product_ids.get(w.workspace_id)][:E_WORKSPACES]
    api = {
        "list": list_specs(workspaces),
        "get": interleave(
            [
                [RequestSpec("GET", f"/v1/products/{p}", token=w.token) for p in product_ids[w.workspace_id]]
                for w in chosen
            ]
        ),
        "create": tuple(RequestSpec("POST", "/v1/products", token=w.token, body=CREATE_BODY) for w in chosen),
    }
    raw = {
        "list": raw_specs(workspaces, RAW_LIST_PATH),
        "get": interleave(
            [
                [
                    RequestSpec("GET", f"/raw/products/{p}", tenant=str(w.workspace_id))
                    for p in product_ids[w.workspace_id]
                ]
                for w in chosen
            ]
        ),
        "create": tuple(
            RequestSpec("POST", RAW_CREATE_PATH, tenant=str(w.workspace_id), body=CREATE_BODY) for w in chosen
        ),
    }
    api_labels = {"list": LIST_PATH, "get": "GET /v1/products/{id}", "create": "POST /v1/products"}
    where = f"{workers}w {connections}c"
    return [
        Pair(
            key=f"s.{name} {where}",
            title=f"Same framework, {name}: API vs Litestar on raw asyncpg ({workers} workers, {connections} connections)",
            metric="throughput",
            baseline=Side(f"Litestar + raw asyncpg {name} ({where})", "litestar_s", raw[name]),
            subject=Side(f"{api_labels[name]} ({where})", "app_s", api[name]),
            target=target,
            bound="min",
            goal=f"{name} >= {target:g} x the same framework's raw asyncpg handler",
        )
        for name, target in S_TARGETS.items()
    ]


# n: noisy neighbours. One workspace floods its heaviest list (100 products a page) over every
# connection, on the API with its default request limits; another workspace's list p95 is
# measured idle and during the flood. The measured workspace has a roomy plan of its own, so only
# the neighbour's flood, not its own limits, can move its latency.
FLOOD_PATH = "/v1/products?limit=100"
NEIGHBOUR_CONNECTIONS = 2


def pair_n(few: Sequence[BenchWorkspace]) -> tuple[Pair, Side]:
    """The pair (the neighbour idle, then during the flood) and the flood itself."""
    flooder, neighbour = few[0], few[1]
    flood = Side(
        "flood: GET /v1/products?limit=100, workspace 1",
        "app_limited",
        (RequestSpec("GET", FLOOD_PATH, token=flooder.token),),
    )
    pair = Pair(
        key="n",
        title="Noisy neighbour: a workspace's list p95 while another floods",
        metric="p95",
        baseline=Side("workspace 2 alone", "app_limited", (RequestSpec("GET", LIST_PATH, token=neighbour.token),)),
        subject=Side(
            "workspace 2 during the flood", "app_limited", (RequestSpec("GET", LIST_PATH, token=neighbour.token),)
        ),
        target=1.5,
        bound="max",
        goal="another workspace's p95 during a flood <= 1.5 x idle",
    )
    return pair, flood
