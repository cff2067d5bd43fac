"""Probe samples: a second member (invited, then accepted) and a pending invitation."""

from __future__ import annotations

from tenantry.probe.samples import Ids, Sample, TenantApi, Use


def _invitation(api: TenantApi) -> dict[str, object]:
    return {"email": f"{api.unique('invitee')}@example.com", "role": "member"}


async def member_sample(api: TenantApi, made: Ids) -> Sample:
    invited = await api.post("/v1/invitations", _invitation(api))
    # Accepting is public: the invitation token is the credential.
    accepted = await api.post(
        "/v1/invitations/accept",
        {"token": invited["token"], "display_name": f"Member {api.marker}"},
        authenticated=False,
    )
    me = await api.get("/v1/members/me")
    return Sample(
        ids={"member_id": accepted["member"]["id"], "owner_member_id": me["id"]},
        routes={
            "GET /v1/members": Use(query=lambda ids: {"role": "member"}),
            "GET /v1/members/me": Use(),
            "PATCH /v1/members/me": Use(body=lambda ids: {"display_name": f"Owner {api.marker}"}),
            "GET /v1/members/{member_id}": Use(),
            "PATCH /v1/members/{member_id}": Use(body=lambda ids: {"display_name": f"Renamed {api.marker}"}),
            "POST /v1/members/{member_id}/deactivate": Use(),
            "POST /v1/members/{member_id}/reactivate": Use(),
            "DELETE /v1/members/{member_id}": Use(),
        },
    )


async def invitation_sample(api: TenantApi, made: Ids) -> Sample:
    pending = await api.post("/v1/invitations", _invitation(api))
    return Sample(
        ids={"invitation_id": pending["id"]},
        routes={
            "POST /v1/invitations": Use(body=lambda ids: _invitation(api)),
            "GET /v1/invitations": Use(query=lambda ids: {"status": "pending"}),
            "GET /v1/invitations/{invitation_id}": Use(),
            "POST /v1/invitations/{invitation_id}/revoke": Use(),
        },
    )
