"""Probe sample: the audit log needs no object of its own; the other samples' writes fill it."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def audit_event_sample(api: TenantApi, made: Ids) -> Sample:
    return Sample(
        routes={
            # The owner made every event so far: B's owner id must filter A's log like a random id.
            "GET /v1/audit-events": Use(query=lambda ids: {"actor_member_id": ids["owner_member_id"]}),
        }
    )
