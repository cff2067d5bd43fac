"""Probe samples: a second member (invited, then accepted) and a pending invitation."""

from __future__ import annotations

from tenantry.tools.probe.samples.base import Ids, Sample, TenantApi, Use


def _invitation(api: TenantApi) -> dict[str, object]:
    # A new address per invitation; pending invitations make no user row.
    return {"email": api.email(api.unique("invitee")), "role": "member"}


async def _member(api: TenantApi, email: str) -> str:
    invited = await api.post("/v1/invitations", {"email": email, "role": "member"})
    # Accepting is public: the invitation token is the credential.
    accepted = await api.post(
        "/v1/invitations/accept",
        {"token": invited["token"], "display_name": f"Member {api.marker}"},
        authenticated=False,
    )
    return str(accepted["member"]["id"])


async def member_sample(api: TenantApi, made: Ids) -> Sample:
    member_id = await _member(api, api.email("member"))
    me = await api.get("/v1/members/me")

    async def spare_member(ids: Ids) -> dict[str, str]:
        # One address for every member the DELETE removes: accepting again reuses its user row,
        # so the probe leaves one user behind for them, not one per request.
        return {"member_id": await _member(api, api.email("spare"))}

    return Sample(
        ids={"member_id": member_id, "owner_member_id": me["id"]},
        routes={
            "GET /v1/members": Use(query=lambda ids: {"role": "member"}),
            "GET /v1/members/me": Use(),
            "PATCH /v1/members/me": Use(body=lambda ids: {"display_name": f"Owner {api.marker}"}),
            "GET /v1/members/{member_id}": Use(),
            "PATCH /v1/members/{member_id}": Use(body=lambda ids: {"display_name": f"Renamed {api.marker}"}),
            "POST /v1/members/{member_id}/deactivate": Use(),
            "POST /v1/members/{member_id}/reactivate": Use(),
            "DELETE /v1/members/{member_id}": Use(fresh=spare_member),
        },
    )


async def invitation_sample(api: TenantApi, made: Ids) -> Sample:
    pending = await api.post("/v1/invitations", _invitation(api))

    async def pending_invitation(ids: Ids) -> dict[str, str]:
        return {"invitation_id": (await api.post("/v1/invitations", _invitation(api)))["id"]}

    return Sample(
        ids={"invitation_id": pending["id"]},
        routes={
            "POST /v1/invitations": Use(body=lambda ids: _invitation(api)),
            "GET /v1/invitations": Use(query=lambda ids: {"status": "pending"}),
            "GET /v1/invitations/{invitation_id}": Use(),
            "POST /v1/invitations/{invitation_id}/revoke": Use(fresh=pending_invitation),
        },
    )
