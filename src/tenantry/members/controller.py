"""/v1/members and /v1/invitations. The workspace comes only from the token (accept: the invitation)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.guards import requires_permission, requires_tenant_token, tenant_principal
from tenantry.auth.handlers import delete, get, patch, post
from tenantry.core.schemas import Page
from tenantry.http.querying import Cursor, Limit
from tenantry.members.invitations import InvitationAcceptService, InvitationService
from tenantry.members.schemas import (
    AcceptedInvitation,
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationFilters,
    InvitationOut,
    InvitationStatus,
    MemberFilters,
    MemberOut,
    MemberUpdate,
    ProfileUpdate,
    Role,
)
from tenantry.members.service import MemberService
from tenantry.tenancy.pagination import PageRequest


def provide_member_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> MemberService:
    return MemberService(db_session, tenant_principal(request), state.cursor_key)


def provide_invitation_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> InvitationService:
    return InvitationService(db_session, tenant_principal(request), state.cursor_key, state.settings.token_pepper)


def provide_accept_service(platform_session: NamedDependency[AsyncSession], state: State) -> InvitationAcceptService:
    return InvitationAcceptService(platform_session, state.settings, state.engine)


RoleFilter = Annotated[Role | None, Parameter(description="Only members with this role.")]
ActiveFilter = Annotated[bool | None, Parameter(description="Only active (true) or deactivated (false) members.")]
StatusFilter = Annotated[
    InvitationStatus | None, Parameter(description="Only invitations in this status ('expired' is computed).")
]

read = requires_permission("members", "read")
write = requires_permission("members", "write")


class MemberController(Controller):
    path = "/v1/members"
    tags = ["Members"]
    dependencies = {"member_service": Provide(provide_member_service, sync_to_thread=False)}

    @get("/", operation_id="listMembers", guards=[read])
    async def list_members(
        self,
        member_service: NamedDependency[MemberService],
        limit: Limit = 20,
        cursor: Cursor = None,
        role: RoleFilter = None,
        is_active: ActiveFilter = None,
    ) -> Page[MemberOut]:
        """List the workspace's members, oldest first, with keyset pagination."""
        return await member_service.list(
            PageRequest(limit=limit, cursor=cursor), MemberFilters(role=role, is_active=is_active)
        )

    @get("/me", operation_id="getMyMembership", guards=[requires_tenant_token])
    async def get_me(self, member_service: NamedDependency[MemberService]) -> MemberOut:
        """The caller's own membership: role, activity and profile. Any valid token may ask."""
        return await member_service.me()

    @patch("/me", operation_id="updateMyProfile", guards=[requires_tenant_token])
    async def update_me(
        self, data: JSONBody[ProfileUpdate], member_service: NamedDependency[MemberService]
    ) -> MemberOut:
        """Change the caller's own profile (display name). Any valid token may do it."""
        return await member_service.update_profile(data)

    @get("/{member_id:str}", operation_id="getMember", guards=[read])
    async def get_member(
        self, member_id: FromPath[uuid.UUID], member_service: NamedDependency[MemberService]
    ) -> MemberOut:
        """Get one member. Another workspace's id answers 404, exactly like an id that never existed."""
        return await member_service.get(member_id)

    @patch("/{member_id:str}", operation_id="updateMember", guards=[write])
    async def update_member(
        self,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[MemberUpdate],
        member_service: NamedDependency[MemberService],
    ) -> MemberOut:
        """Change a member's role or display name.

        Only an owner may grant or take away the owner role or change an owner, and the last active
        owner cannot be demoted (409). A new role narrows the member's tokens on their next request.
        """
        return await member_service.update(member_id, data)

    @post("/{member_id:str}/deactivate", operation_id="deactivateMember", guards=[write], status_code=200)
    async def deactivate_member(
        self, member_id: FromPath[uuid.UUID], member_service: NamedDependency[MemberService]
    ) -> MemberOut:
        """Deactivate a member: all their tokens in this workspace fail from the next request on."""
        return await member_service.deactivate(member_id)

    @post("/{member_id:str}/reactivate", operation_id="reactivateMember", guards=[write], status_code=200)
    async def reactivate_member(
        self, member_id: FromPath[uuid.UUID], member_service: NamedDependency[MemberService]
    ) -> MemberOut:
        """Reactivate a member: their unexpired, unrevoked tokens work again."""
        return await member_service.reactivate(member_id)

    @delete("/{member_id:str}", operation_id="removeMember", guards=[write], status_code=204)
    async def remove_member(
        self, member_id: FromPath[uuid.UUID], member_service: NamedDependency[MemberService]
    ) -> None:
        """Remove a member from the workspace, with all their tokens. The last active owner stays."""
        await member_service.remove(member_id)


class InvitationController(Controller):
    path = "/v1/invitations"
    tags = ["Invitations"]
    dependencies = {
        "invitation_service": Provide(provide_invitation_service, sync_to_thread=False),
        "accept_service": Provide(provide_accept_service, sync_to_thread=False),
    }

    @post(
        "/",
        operation_id="createInvitation",
        guards=[write],
        status_code=201,
        opt={"idempotency_redact": ("token",)},
    )
    async def create_invitation(
        self, data: JSONBody[InvitationCreate], invitation_service: NamedDependency[InvitationService]
    ) -> Response[InvitationCreated]:
        """Invite someone by email. The answer carries the invitation token, this once only.

        The invitation lives 7 days unless asked otherwise (at most 30). Only an owner may invite
        an owner.
        """
        invitation = await invitation_service.create(data)
        return Response(invitation, status_code=201, headers={"Location": f"/v1/invitations/{invitation.id}"})

    @get("/", operation_id="listInvitations", guards=[read])
    async def list_invitations(
        self,
        invitation_service: NamedDependency[InvitationService],
        limit: Limit = 20,
        cursor: Cursor = None,
        status: StatusFilter = None,
    ) -> Page[InvitationOut]:
        """List invitations, oldest first, with keyset pagination."""
        return await invitation_service.list(PageRequest(limit=limit, cursor=cursor), InvitationFilters(status=status))

    @get("/{invitation_id:str}", operation_id="getInvitation", guards=[read])
    async def get_invitation(
        self, invitation_id: FromPath[uuid.UUID], invitation_service: NamedDependency[InvitationService]
    ) -> InvitationOut:
        """Get one invitation (never its token)."""
        return await invitation_service.get(invitation_id)

    @post("/{invitation_id:str}/revoke", operation_id="revokeInvitation", guards=[write], status_code=200)
    async def revoke_invitation(
        self, invitation_id: FromPath[uuid.UUID], invitation_service: NamedDependency[InvitationService]
    ) -> InvitationOut:
        """Revoke a pending invitation; any other status answers 409."""
        return await invitation_service.revoke(invitation_id)

    # Public: the invitation token in the body is the credential, so there is no bearer to guard.
    @post(
        "/accept",
        operation_id="acceptInvitation",
        guards=[],
        status_code=201,
        opt={"problems": (401, 403, 409, 410, 429)},
    )
    async def accept_invitation(
        self, data: JSONBody[InvitationAccept], accept_service: NamedDependency[InvitationAcceptService]
    ) -> Response[AcceptedInvitation]:
        """Accept an invitation: join the workspace and get a first token (shown this once).

        The invitation token proves only that its holder received the invitation, so no password
        is taken, set or checked here: the member is linked to the account with the invited email,
        created without a password if there is none, and the answer is the same either way.
        Unknown, expired, revoked and used invitations, and those whose inviter may no longer
        grant the role, all answer the same 410.
        """
        accepted = await accept_service.accept(data)
        return Response(accepted, status_code=201, headers={"Location": f"/v1/members/{accepted.member.id}"})


__all__ = ["InvitationController", "MemberController"]
