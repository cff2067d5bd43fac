"""`tenantry bench`: the harness runs end to end at a tiny size. Never a timed assertion: no speed is checked."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tenantry import cli
from tenantry.catalog import repository as product_repository
from tenantry.catalog.models import Product
from tenantry.catalog.repository import ProductRepository
from tenantry.catalog.schemas import ProductFilters, ProductOut
from tenantry.catalog.service import SORTABLE
from tenantry.db.server import drop_database
from tenantry.settings import Settings
from tenantry.tenancy.pagination import Ordering
from tenantry.tools.bench import citus as citus_bench
from tenantry.tools.bench import raw_litestar, servers, warm
from tenantry.tools.bench.database import Layout, Secrets, layout_settings
from tenantry.tools.bench.load import LoadResult, RequestSpec, run_load
from tenantry.tools.bench.raw_app import LIST_SQL
from tenantry.tools.bench.report import END, START, read_json, render_markdown, update_markdown, write_json, write_plot
from tenantry.tools.bench.results import LayoutResult, Machine, SideResult, combine
from tenantry.tools.bench.runner import Bench, BenchOptions
from tests.support import TEST_APP_PASSWORD, TEST_PEPPER, Tenant

TOOLS = ["python", *(["wrk"] if shutil.which("wrk") else [])]


def test_raw_handler_runs_the_sql_the_products_list_compiles_to() -> None:
    """The baseline is only fair while it issues the very SELECT the repository does."""
    ordering = Ordering.parse("created_at", SORTABLE, Product.id)
    statement = ProductRepository(None, uuid.uuid4()).page_statement(ProductFilters(), ordering, False)
    compiled = str(statement.compile(dialect=postgresql.asyncpg.dialect()))
    assert LIST_SQL.format(t="products") == compiled


def test_framework_baseline_runs_the_statements_the_api_runs() -> None:
    """The same-framework baseline's get is the repository's; its INSERT returns what ProductOut needs."""
    dialect = postgresql.asyncpg.dialect()
    assert str(product_repository.BY_ID[True].compile(dialect=dialect)) == raw_litestar.GET_SQL
    assert "products.tenant_id = $1::UUID AND products.id = $2::UUID" in raw_litestar.GET_SQL
    assert "products.deleted_at IS NULL" in raw_litestar.GET_SQL
    assert raw_litestar.GET_PARAMETERS == ("tenant_id", "id")
    assert str(product_repository.INSERT.compile(dialect=dialect)) == raw_litestar.INSERT_SQL
    returned = raw_litestar.INSERT_SQL.split("RETURNING", 1)[1]
    assert [c.strip().removeprefix("products.") for c in returned.split(",")] == list(ProductOut.__struct_fields__)
    assert set(raw_litestar.AUDIT_PARAMETERS) >= {"tenant_id", "id", "action", "target_type", "target_id"}


@pytest.fixture
async def bench_databases(server_url: str) -> AsyncIterator[None]:
    """The bench names its databases by layout; on a shared server an earlier run's would be reused
    (with its created products), so drop them before and after."""
    names = [Layout("few", 3, 20).database, Layout("many", 6, 10).database]
    urls = [make_url(server_url).set(database=name).render_as_string(hide_password=False) for name in names]
    for url in urls:
        await drop_database(url)
    yield
    for url in urls:
        await drop_database(url)


@pytest.mark.usefixtures("bench_databases")
async def test_bench_runs_every_scenario_and_writes_json_markdown_and_plot(server_url: str, tmp_path: Path) -> None:
    options = BenchOptions(
        data_dir=tmp_path / "data",
        database_url=server_url,
        workers=1,
        connections=4,
        duration=1.0,
        rounds=1,
        warmup=0.0,
        workspaces_small=3,
        workspaces_large=6,
        products_total=60,
        command="tenantry bench --test",
        s_workers=(1,),
        s_connections=(2,),
        # The roles are cluster-wide: the bench databases must use the test run's secrets.
        environ={"TENANTRY_TOKEN_PEPPER": TEST_PEPPER, "TENANTRY_APP_PASSWORD": TEST_APP_PASSWORD},
    )
    # The runner drives its own event loops (asyncio.run) and subprocesses: run it off this loop.
    report = await asyncio.to_thread(Bench(options).run)

    assert [p.key for p in report.pairs] == [
        "a",
        "b",
        "c",
        "d",
        "s.list 1w 2c",
        "s.get 1w 2c",
        "s.create 1w 2c",
        "n",
    ]
    assert [s.key for s in report.singles] == ["e.get", "e.create", "e.mixed"]
    for pair in report.pairs:
        for side in (pair.baseline, pair.subject):
            assert side.requests > 0, (pair.key, side.label)
            assert side.errors == 0, (pair.key, side.label, side.rounds)
        assert pair.ratio > 0
        assert pair.passed == pair.verdict.endswith("PASS")
    for single in report.singles:
        assert single.result.requests > 0, single
        assert single.result.errors == 0, single
    assert [(layout.workspaces, layout.products_per_workspace) for layout in report.layouts] == [
        (3, 20),
        (6, 10),
    ]  # the same 60 products, 2x the tenants
    assert {m.server for m in report.memory} == {
        "app",
        "raw",
        "app_many",
        "app_limited",
        "app_s_1w",
        "litestar_s_1w",
    }
    # Every measured run counted the backends its server opened (pg_stat_activity).
    for pair in report.pairs:
        for side in (pair.baseline, pair.subject):
            assert side.backends_opened is not None, (pair.key, side.label)
    # n: the flood ran against the default limits and was refused in part; the neighbour never.
    assert any(note.startswith("n: the flood") and "refused with 429" in note for note in report.notes), report.notes
    assert all(m.peak_rss_mb and min(m.peak_rss_mb) > 10 for m in report.memory)
    assert report.machine.postgres
    assert report.machine.cores >= 1
    # Every API side that sends tokens was measured on a freshly filled token cache, and the report says so.
    assert report.machine.auth_cache_ttl_s == 60.0
    assert any(note.startswith("Token cache emptied and refilled") for note in report.notes), report.notes

    # The creates really created rows, through the API, in the workspaces the load used.
    few = layout_settings(server_url, Layout("few", 3, 20), Secrets(TEST_PEPPER, TEST_APP_PASSWORD))
    engine = create_async_engine(few.admin_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            created = (
                await connection.execute(text("SELECT count(*) FROM products WHERE name = 'Bench product'"))
            ).scalar_one()
            norls = (await connection.execute(text("SELECT count(*) FROM bench.products_norls"))).scalar_one()
    finally:
        await engine.dispose()
    assert created > 0
    assert norls == 3 * 20  # the no-RLS copy was made before the creates

    json_path, md_path, png_path = tmp_path / "results.json", tmp_path / "performance.md", tmp_path / "plot.png"
    write_json(report, json_path)
    assert read_json(json_path) == report
    md_path.write_text("# Performance\n\nHand-written method.\n", encoding="utf-8")
    for _ in range(2):  # regenerating replaces the section, keeps the hand-written text
        update_markdown(md_path, render_markdown(report, png_path.name))
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.count(START) == 1
    assert markdown.count(END) == 1
    assert "Hand-written method." in markdown
    assert "| a |" in markdown
    assert "| s.create 1w 2c |" in markdown
    assert "| churn |" in markdown
    assert "tenantry bench --test" in markdown
    assert "TENANTRY_AUTH_CACHE_TTL_S=60 s" in markdown
    write_plot(report, png_path)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second run reuses the seeded databases instead of seeding again.
    again = await asyncio.to_thread(Bench(dataclasses.replace(options, scenarios=("c",))).run)
    assert [layout.created_workspaces for layout in again.layouts] == [0]
    assert again.pairs[0].subject.errors == 0
    assert again.pairs[0].subject.requests > 0


@pytest.mark.parametrize("tool", TOOLS)
def test_load_generators_count_answers_outside_2xx_as_errors(tool: str, settings: Settings, tmp_path: Path) -> None:
    server = servers.start("app", "uvicorn", "app", settings, 1, tmp_path)
    try:
        specs = [RequestSpec("GET", "/health/live"), RequestSpec("GET", "/v1/whoami", token="tnt_not_a_token")]
        result = run_load(tool, server.base_url, specs, connections=2, seconds=1.0)  # type: ignore[arg-type]
    finally:
        server.stop()
    # Half the requests are refused (401): counted, never hidden in the throughput.
    assert result.requests > 4
    assert 0 < result.status_errors < result.requests
    assert result.socket_errors == 0
    assert result.p50_ms <= result.p99_ms <= result.max_ms
    assert server.peak_rss_bytes
    assert min(server.peak_rss_bytes.values()) > 10 * 2**20


async def test_warming_sends_every_token_once_to_every_worker(
    settings: Settings, tenant_a: Tenant, tenant_b: Tenant, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(servers.start, "app", "uvicorn", "app", settings, 2, tmp_path)
    try:
        result = await warm.warm_tokens(server, [tenant_a.token, tenant_b.token, tenant_a.token])
    finally:
        await asyncio.to_thread(server.stop)
    # Each worker was told apart by its socket, so the pass is exact: 2 tokens x 2 workers.
    assert (result.workers, result.workers_reached, result.exact) == (2, 2, True)
    assert result.tokens == 2
    assert result.requests == 4
    assert result.errors == 0


def test_python_load_counts_no_request_for_a_failed_connection() -> None:
    closed = servers.free_port()  # nothing listens there
    # Two seconds, not a fraction: on a loaded machine a short run may end before its first attempt.
    result = run_load("python", f"http://127.0.0.1:{closed}", [RequestSpec("GET", "/")], connections=2, seconds=2)
    assert result.socket_errors > 0
    assert result.requests == 0
    assert result.rps == 0.0


def test_scenario_z_refuses_to_run_without_a_citus_coordinator(
    server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """z compares a cluster with a single node: without --citus-url, or with one that names a plain
    server, it stops with exit 2 before seeding anything, rather than compare a node with itself."""
    if asyncio.run(_is_citus(server_url)):
        pytest.skip("the test server is a Citus coordinator: it would be accepted as --citus-url")
    monkeypatch.setenv("DATABASE_URL", server_url)
    monkeypatch.setenv("TENANTRY_TOKEN_PEPPER", TEST_PEPPER)
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", TEST_APP_PASSWORD)
    common = ["bench", "--scenarios", "z", "--no-report", "--data-dir", str(tmp_path / "data")]

    assert cli.main(common) == 2
    assert "scenario z needs --citus-url" in capsys.readouterr().err

    assert cli.main([*common, "--citus-url", server_url]) == 2
    assert "--citus-url: the citus extension is not installed" in capsys.readouterr().err
    assert not (tmp_path / "data" / f"{citus_bench.SINGLE_PREFIX}_100x10000.tokens.json").exists()


async def _is_citus(url: str) -> bool:
    engine = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
            return found.first() is not None
    finally:
        await engine.dispose()


def _side(label: str, rps: float, p95: float, p99: float) -> SideResult:
    rounds = [
        LoadResult(
            tool="wrk", connections=16, seconds=10.0, requests=int(rps * 10), rps=rps, p50_ms=p95 / 2,
            p95_ms=p95, p99_ms=p99, mean_ms=p95 / 2, max_ms=p99, status_errors=0, socket_errors=0,
        )
    ]  # fmt: skip
    return combine(label, "z", rounds)


def test_scenario_z_reports_both_sides_and_their_ratios() -> None:
    """The generated section: Citus / single node for req/s (below 1: slower on Citus) and for p95
    and p99 (above 1: slower), per endpoint, with the sizes and the command."""
    result = citus_bench.endpoint_result("get", _side("single", 500.0, 40.0, 50.0), _side("citus", 400.0, 50.0, 75.0))
    assert (result.rps_ratio, result.p95_ratio, result.p99_ratio) == (0.8, 1.25, 1.5)
    assert result.round_rps_ratios == [0.8]
    layout = LayoutResult(
        label="z", database="d", workspaces=50, products_per_workspace=2000, products=100_000, seed_seconds=1.0,
        created_workspaces=0,
    )  # fmt: skip
    machine = Machine(
        cpu="cpu", cores=2, ram_gb=1.0, os="os", python="3", postgres="15", postgres_settings={}, server="uvicorn",
        workers=1, load_tool="wrk",
    )  # fmt: skip
    report = citus_bench.CitusReport(
        generated_at="now", command="tenantry bench --scenarios z", machine=machine, single_server="s",
        single_settings={}, nodes=["coordinator h:1", "worker h:2"], citus_settings={}, distributed_tables=10,
        layouts=[layout, layout], workers=1, connections=16, duration_s=10, rounds=1, warmup_s=3,
        endpoints=[result], total_seconds=60,
    )  # fmt: skip
    text_ = citus_bench.render_markdown(report)
    assert text_.startswith(citus_bench.CITUS_START)
    assert text_.endswith(citus_bench.CITUS_END)
    assert "tenantry bench --scenarios z" in text_
    assert "50 workspaces x 2,000 products" in text_
    assert (
        "| get | 500 | 400 | 0.80 (rounds: 0.80) | 20.0 / 40.0 / 50.0 | 25.0 / 50.0 / 75.0 | 1.25 | 1.50 | 0, 0 |"
        in text_
    )
