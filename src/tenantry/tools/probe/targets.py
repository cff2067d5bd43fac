"""Where the probe runs: the app in process (routing table and document), or a deployment (document)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from litestar import Litestar

from tenantry.tools.probe.discovery import routes_of_app, routes_of_document
from tenantry.tools.probe.findings import Finding, ProbeReport
from tenantry.tools.probe.prober import GroundTruth, ProbeError, run_probe
from tenantry.tools.probe.samples.base import SampleFactory
from tenantry.tools.probe.transport import WaitingOutRateLimits

OPENAPI_PATH = "/schema/openapi.json"
IN_PROCESS_BASE = "http://tenantry.tools.probe"


async def _document(http: httpx.AsyncClient) -> dict[str, Any]:
    try:
        response = await http.get(OPENAPI_PATH)
    except httpx.HTTPError as exc:
        raise ProbeError(f"cannot reach {http.base_url}: {exc!r}") from exc
    if response.status_code != 200:
        raise ProbeError(f"GET {OPENAPI_PATH} answered {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise ProbeError(f"GET {OPENAPI_PATH} is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise ProbeError(f"GET {OPENAPI_PATH} is not an OpenAPI document")
    return document


async def probe_app(
    app: Litestar,
    admin_token: str,
    samples: Sequence[SampleFactory],
    *,
    ground_truth: GroundTruth | None = None,
    progress: bool = False,
) -> ProbeReport:
    """Probe the app in this process; served and documented routes must agree (else findings)."""
    transport = WaitingOutRateLimits(httpx.ASGITransport(app=app, raise_app_exceptions=False))  # type: ignore[arg-type]
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_BASE) as http:
        document = await _document(http)
        served, documented = routes_of_app(app), routes_of_document(document)
        mismatches = [
            Finding.of("undocumented-route", r, "served but not in the OpenAPI document: a deployment probe misses it")
            for r in sorted(served - documented)
        ] + [
            Finding.of("unserved-route", r, "in the OpenAPI document but not in the routing table")
            for r in sorted(documented - served)
        ]
        return await run_probe(
            http,
            admin_token,
            routes=served | documented,
            document=document,
            samples=samples,
            target="the app in process",
            discovery_findings=mismatches,
            ground_truth=ground_truth,
            progress=progress,
        )


async def probe_deployment(
    base_url: str,
    admin_token: str,
    samples: Sequence[SampleFactory],
    *,
    request_timeout: float = 30.0,
    progress: bool = False,
) -> ProbeReport:
    """Probe a running deployment: its OpenAPI document is the list of routes."""
    transport = WaitingOutRateLimits(httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=request_timeout) as http:
        document = await _document(http)
        return await run_probe(
            http,
            admin_token,
            routes=routes_of_document(document),
            document=document,
            samples=samples,
            target=base_url,
            progress=progress,
        )
