"""Probe sample: a second personal access token of the owner (never the token the probe uses)."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


async def token_sample(api: TenantApi, made: Ids) -> Sample:
    def token(ids: Ids) -> dict[str, object]:
        return {"name": f"Token {api.marker}", "expires_in_days": 1}

    created = await api.post("/v1/tokens", token(made))

    async def new_token(ids: Ids) -> dict[str, str]:
        # Deleted and rotated tokens answer 404 and 409 the second time.
        return {"token_id": (await api.post("/v1/tokens", token(ids)))["id"]}

    return Sample(
        ids={"token_id": created["id"]},
        routes={
            "POST /v1/tokens": Use(body=token),
            # Owners may list a member's tokens: the prober swaps in B's member id.
            "GET /v1/tokens": Use(query=lambda ids: {"member_id": ids["member_id"]}),
            "GET /v1/tokens/{token_id}": Use(),
            "DELETE /v1/tokens/{token_id}": Use(fresh=new_token),
            "POST /v1/tokens/{token_id}/rotate": Use(body=lambda ids: {"grace_period_seconds": 0}, fresh=new_token),
        },
    )
