"""`tenantry probe`: clean on the real app, and it catches leaky and unprobed routes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Controller, Litestar, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantry.app import create_app
from tenantry.auth.principal import Principal
from tenantry.db.engine import create_engine
from tenantry.settings import Settings
from tenantry.tools.probe.discovery import routes_of_app
from tenantry.tools.probe.findings import ProbeReport
from tenantry.tools.probe.samples import SAMPLES
from tenantry.tools.probe.samples.base import PROBE_EMAIL_DOMAIN, Ids, Sample, SampleFactory, TenantApi, Use
from tenantry.tools.probe.samples.catalog import product_sample
from tenantry.tools.probe.targets import probe_app
from tenantry.workspaces.tables import tenant_tables
from tests.support import TEST_APP_PASSWORD, TEST_PEPPER, issue_admin_token, snapshot_rows


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _rows_of(admin_engine: AsyncEngine):  # type: ignore[no-untyped-def]
    """Ground truth past RLS: every row of the workspace in every tenant table, as text."""

    async def rows(workspace_id: str) -> dict[str, Any]:
        return {t.name: await snapshot_rows(admin_engine, t.name, workspace_id) for t in tenant_tables()}  # type: ignore[arg-type]

    return rows


def _describe(report: ProbeReport) -> str:
    return (
        "\n".join(f"{f.check} {f.route}: {f.message}" for f in report.findings) + "\nnotes:\n" + "\n".join(report.notes)
    )


async def _user_emails(admin_engine: AsyncEngine) -> set[str]:
    async with admin_engine.connect() as connection:
        return set((await connection.execute(text("SELECT email FROM users"))).scalars())


def _served(report: ProbeReport) -> list[str]:
    return [r for r in report.checked.routes if r not in report.checked.not_served]


async def test_probe_of_the_real_app_finds_nothing_and_reaches_every_tenant_route(
    fresh_app: Litestar, admin_headers: dict[str, str], admin_engine: AsyncEngine
) -> None:
    app = fresh_app  # the probe runs the app's lifespan itself
    users_before = await _user_emails(admin_engine)

    report = await probe_app(app, _token(admin_headers), SAMPLES, ground_truth=_rows_of(admin_engine))

    assert report.findings == [], _describe(report)
    assert report.ok
    discovered = {str(r) for r in routes_of_app(app)}
    assert set(report.checked.routes) == discovered
    assert len(discovered) > 40  # 37 operations and a HEAD per GET
    # Every route was served and probed, HEAD included (answered as its GET: http/edge.py).
    assert report.checked.probed == _served(report)
    assert report.checked.not_served == []
    assert all(r.startswith("GET ") for r in discovered - set(report.checked.probed) - set(report.checked.not_served))
    assert report.checked.comparisons > len(report.checked.probed)
    # The purge deletes no users: the probe's own stay behind, all in the reserved domain.
    left = await _user_emails(admin_engine) - users_before
    assert left, "the probe accepts invitations, so it makes users"
    assert all(email.endswith("@" + PROBE_EMAIL_DOMAIN) for email in left), left


# --- a deliberately leaky app ---------------------------------------------------------------------


class Peek(msgspec.Struct):
    id: uuid.UUID
    name: str


def leaky_controller(privileged: AsyncEngine) -> type[Controller]:
    """Two classic mistakes: a lookup by id past RLS, and a tenant picked from a header."""

    class LeakyController(Controller):
        path = "/v1/leaky"

        @get("/products/{product_id:str}", operation_id="peekProduct")
        async def peek_product(self, product_id: FromPath[uuid.UUID]) -> Peek:
            async with privileged.connect() as connection:
                row = (
                    await connection.execute(text("SELECT id, name FROM products WHERE id = :id"), {"id": product_id})
                ).first()
            if row is None:
                raise NotFoundException()
            return Peek(id=row.id, name=row.name)

        @post("/products/{product_id:str}/touch", operation_id="touchProduct", status_code=200)
        async def touch_product(self, product_id: FromPath[uuid.UUID], request: Request[Principal, Any, Any]) -> Peek:
            """A write that runs in the workspace a header names: A's product is not in B (404)."""
            try:
                tenant = uuid.UUID(request.headers.get("x-tenant-id") or str(request.user.tenant_id))
            except ValueError:
                tenant = request.user.tenant_id
            async with privileged.begin() as connection:
                row = (
                    await connection.execute(
                        text("UPDATE products SET name = name WHERE id = :id AND tenant_id = :t RETURNING id, name"),
                        {"id": product_id, "t": tenant},
                    )
                ).first()
            if row is None:
                raise NotFoundException()
            return Peek(id=row.id, name=row.name)

        @get("/catalog", operation_id="peekCatalog")
        async def peek_catalog(self, request: Request[Principal, Any, Any]) -> list[Peek]:
            tenant = request.headers.get("x-tenant-id") or str(request.user.tenant_id)
            async with privileged.connect() as connection:
                rows = await connection.execute(
                    text("SELECT id, name FROM products WHERE tenant_id = :t ORDER BY id"), {"t": uuid.UUID(tenant)}
                )
            return [Peek(id=r.id, name=r.name) for r in rows]

    return LeakyController


async def leaky_sample(api: TenantApi, made: Ids) -> Sample:
    return Sample(
        routes={
            "GET /v1/leaky/products/{product_id}": Use(),
            "GET /v1/leaky/catalog": Use(),
            "POST /v1/leaky/products/{product_id}/touch": Use(),
        },
    )


class UnsampledController(Controller):
    path = "/v1/widgets"

    @get("/{widget_id:str}", operation_id="getWidget")
    async def get_widget(self, widget_id: FromPath[uuid.UUID]) -> Peek:
        raise NotFoundException()


@pytest.fixture(scope="module")
def broken_app_report(migrated_settings: Settings) -> ProbeReport:
    """One probe of an app with three kinds of broken route: leaky ones, an unsampled one and a
    hidden one. Each probe of the whole API takes seconds, and the findings are per route, so the
    three tests below read one report instead of running three."""

    async def probe() -> ProbeReport:
        admin_engine = create_async_engine(migrated_settings.admin_url, poolclass=NullPool)
        app_engine = create_engine(migrated_settings.app_url, migrated_settings, pool_size=1)
        try:
            issued, _ = await issue_admin_token(app_engine, migrated_settings, f"probe {uuid.uuid4().hex[:6]}")
            app = create_app(migrated_settings)
            for controller in (leaky_controller(admin_engine), UnsampledController, HiddenController):
                app.register(controller)
            return await probe_app(app, issued.token, [*SAMPLES, leaky_sample])
        finally:
            await app_engine.dispose()
            await admin_engine.dispose()

    return asyncio.run(probe())


BY_ID, BY_HEADER = "GET /v1/leaky/products/{product_id}", "GET /v1/leaky/catalog"
WRITE_BY_HEADER = "POST /v1/leaky/products/{product_id}/touch"
# HEAD runs as the GET, so it leaks as the GET does (without a body to carry B's data).
HEAD_BY_ID, HEAD_BY_HEADER = "HEAD /v1/leaky/products/{product_id}", "HEAD /v1/leaky/catalog"
LEAKY = {BY_ID, BY_HEADER, WRITE_BY_HEADER, HEAD_BY_ID, HEAD_BY_HEADER}
WIDGET = {"GET /v1/widgets/{widget_id}", "HEAD /v1/widgets/{widget_id}"}
HIDDEN = {"GET /v1/hidden", "HEAD /v1/hidden"}


def _findings_on(report: ProbeReport, routes: set[str]) -> set[tuple[str, str]]:
    return {(f.check, f.route) for f in report.findings if f.route in routes}


def test_the_broken_apps_findings_are_all_about_the_broken_routes(broken_app_report: ProbeReport) -> None:
    """The app's own routes stay clean: every finding is about the routes added to break it."""
    assert not broken_app_report.ok
    assert {f.route for f in broken_app_report.findings} <= LEAKY | WIDGET | HIDDEN, _describe(broken_app_report)


def test_probe_reports_a_route_that_reads_past_rls_or_takes_the_tenant_from_a_header(
    broken_app_report: ProbeReport,
) -> None:
    found = _findings_on(broken_app_report, LEAKY)
    assert ("foreign-id", BY_ID) in found  # 200 for B's product, 404 for a random id
    assert ("leak", BY_ID) in found
    assert ("tenant-header", BY_HEADER) in found
    assert ("leak", BY_HEADER) in found
    # The write run in B finds no A product there (404 against the control's 200); B is unchanged.
    assert ("tenant-header", WRITE_BY_HEADER) in found
    assert ("foreign-id", HEAD_BY_ID) in found
    assert ("tenant-header", HEAD_BY_HEADER) in found
    assert all(f.severity in ("critical", "high") for f in broken_app_report.findings if f.route in LEAKY)


def test_probe_reports_a_tenant_route_no_sample_covers_as_unprobed(broken_app_report: ProbeReport) -> None:
    assert sorted(_findings_on(broken_app_report, WIDGET)) == [
        ("unprobed-route", "GET /v1/widgets/{widget_id}"),
        ("unprobed-route", "HEAD /v1/widgets/{widget_id}"),
    ], _describe(broken_app_report)
    assert "GET /v1/widgets/{widget_id}" in broken_app_report.checked.routes
    assert "GET /v1/widgets/{widget_id}" not in broken_app_report.checked.probed


def test_probe_reports_a_served_tenant_route_missing_from_the_openapi_document(broken_app_report: ProbeReport) -> None:
    """Against a deployment the document is all the probe sees: a hidden route would escape it there."""
    found = _findings_on(broken_app_report, HIDDEN)
    assert ("undocumented-route", "GET /v1/hidden") in found
    assert ("unprobed-route", "GET /v1/hidden") in found
    assert {route for _, route in found} == HIDDEN, _describe(broken_app_report)


def with_route(factory: SampleFactory, route: str, use: Use) -> SampleFactory:
    """The sample `factory`, calling `route` as `use` says instead."""

    async def changed(api: TenantApi, made: Ids) -> Sample:
        sample = await factory(api, made)
        return Sample(ids=sample.ids, routes={**sample.routes, route: use})

    return changed


async def test_probe_reports_a_route_whose_own_valid_request_fails_instead_of_passing_it(
    fresh_app: Litestar, admin_headers: dict[str, str]
) -> None:
    """An invalid sample body gets the same 422 for B's ids and random ones: that proves nothing."""
    patch_product = "PATCH /v1/products/{product_id}"
    broken = with_route(product_sample, patch_product, Use(body=lambda ids: {"price_cents": "free"}))
    samples = [broken if factory is product_sample else factory for factory in SAMPLES]

    report = await probe_app(fresh_app, _token(admin_headers), samples)

    assert [(f.check, f.route) for f in report.findings] == [("control-failed", patch_product)], _describe(report)
    assert "422" in report.findings[0].message
    assert patch_product not in report.checked.probed
    assert report.checked.probed == [r for r in _served(report) if r != patch_product]


class HiddenController(Controller):
    path = "/v1/hidden"

    @get("/", operation_id="getHidden", include_in_schema=False)
    async def get_hidden(self) -> list[Peek]:
        return []


# --- the command line, in process and against a running server -----------------------------------

SOURCE = Path(__file__).resolve().parents[2] / "src"


def _environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The service's environment, with this checkout's package first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=settings.database_url,
        TENANTRY_TOKEN_PEPPER=TEST_PEPPER,
        TENANTRY_APP_PASSWORD=TEST_APP_PASSWORD,
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")])),
        **extra,
    )
    return env


async def _tenantry(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tenantry", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[str]:
    """`tenantry serve` in a subprocess on a free port; yields its base URL once it answers."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tenantry",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=_environment(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url) as http:
            for _ in range(300):  # readiness, not timing: give up only if it never comes up
                if process.returncode is not None:
                    raise AssertionError(f"tenantry serve exited with {process.returncode}")
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("tenantry serve never became ready")
        yield base_url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_probe_command_against_a_running_server_exits_0(
    settings: Settings, admin_headers: dict[str, str]
) -> None:
    async with running_server(settings) as base_url:
        env = _environment(settings, TENANTRY_PROBE_ADMIN_TOKEN=_token(admin_headers))
        code, out, err = await _tenantry(env, "probe", "--base-url", base_url, "--json")

    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["findings"] == []
    assert report["checked"]["target"] == base_url
    assert len(report["checked"]["routes"]) > 40
    served = [r for r in report["checked"]["routes"] if r not in report["checked"]["not_served"]]
    assert report["checked"]["probed"] == served
    assert all(r.startswith("HEAD ") for r in report["checked"]["not_served"])


async def test_probe_command_in_process_exits_0_and_without_a_token_for_a_deployment_exits_2(
    settings: Settings,
) -> None:
    code, out, err = await _tenantry(_environment(settings), "probe")
    assert code == 0, out + err
    assert "0 findings" in out

    code, out, err = await _tenantry(_environment(settings), "probe", "--base-url", "http://127.0.0.1:9")
    assert code == 2
    assert "admin token" in err

    # A wrong admin token cannot make the workspaces: the probe could not run, which is not "clean".
    async with running_server(settings) as base_url:
        code, out, err = await _tenantry(
            _environment(settings), "probe", "--base-url", base_url, "--admin-token", "tna_wrong"
        )
    assert code == 2, out + err
    assert "401" in err
