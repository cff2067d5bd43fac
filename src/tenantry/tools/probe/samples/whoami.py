"""Probe sample: /v1/whoami reads the token's own principal; it has no ids, only headers and queries."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def whoami_sample(api: TenantApi, made: Ids) -> Sample:
    return Sample(routes={"GET /v1/whoami": Use()})
