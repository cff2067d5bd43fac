"""Invitations: create, list, get and revoke (tenant side), and accept (public, by token).

The invitation token (`tni_...`) is returned once, to the inviter; only its HMAC digest is stored.
'expired' is never stored: a pending invitation past `expires_at` reads as expired.

The trust model: an invitation token proves only that its holder received the invitation. It
proves nothing about owning the email address, nor about any global account with that email,
because the inviter holds the very same token and can accept it themselves. So accepting never
reads, sets or checks a password: with no account for the email, one is created without a
password (it signs in with tokens; only a platform admin sets a password, with `tenantry admin
user set-password`); with an account, the new membership is linked to it and the account is left
exactly as it was. Both cases answer the same 201 with the same shape, so accepting tells nobody
whether the email had an account. Otherwise an inviter could create a global account with a
password of their choosing for someone else's email (pre-hijacking it: a workspace provisioned
later for that email would reuse the account and its password), or probe which emails have
accounts.

An invitation is also only as good as its inviter's authority: accepting re-checks that the
inviter is still an active member of the workspace whose current role may grant the invited role
(an owner any role, an admin any but owner), and a demotion, deactivation or removal revokes the
invitations it takes the authority for (service.py). Creating reads the inviter's role locked
against a concurrent change, so the two cannot cross.

Accepting runs without a bearer token. The token's digest names the workspace through the
SECURITY DEFINER resolve_invitation() (called as the app login role, like the token resolver);
from then on everything runs with that workspace as the tenant, in one transaction that locks the
invitation, re-checks it and its inviter, creates the user (if new), the membership and a first
token, and marks the invitation accepted. Every unusable invitation, whatever the reason, answers
the same 410.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.principal import Principal
from tenantry.auth.tokens import INVITATION_TOKEN_PREFIX, generate_token, is_well_formed, token_digest
from tenantry.core.errors import Conflict, NotFound, PermissionDenied, WorkspaceUnavailable
from tenantry.core.ids import uuid7
from tenantry.core.schemas import Page
from tenantry.members.errors import InvitationUnavailable, OwnerRequired
from tenantry.members.models import Invitation, Membership
from tenantry.members.repository import InvitationRepository, MembershipRepository, resolve_invitation
from tenantry.members.schemas import (
    AcceptedInvitation,
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationFilters,
    InvitationOut,
)
from tenantry.members.service import NOT_FOUND, grantable_roles, member_out
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.users.login import acting_as, issue_member_token
from tenantry.users.repository import UserRepository
from tenantry.users.throttle import normalize_email
from tenantry.workspaces.repository import WorkspaceRepository

ACCEPTED_TOKEN_LIFETIME = timedelta(days=90)
ACCEPTED_TOKEN_NAME = "invitation token"  # noqa: S105 - a display name, not a secret
ALREADY_MEMBER = "This account is already a member of the workspace."

_ALREADY_MEMBER = Conflict(ALREADY_MEMBER)


def _out(invitation: Any, status: str) -> InvitationOut:
    """An invitation (object or row) and its effective status, as the wire sees it."""
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=status,
        invited_by_member_id=invitation.invited_by_member_id,
        accepted_member_id=invitation.accepted_member_id,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at,
        revoked_at=invitation.revoked_at,
    )


class InvitationService:
    """The tenant side, on the request's tenant session."""

    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes, pepper: str) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.tenant_id = principal.tenant_id
        self.cursor_key = cursor_key
        self.pepper = pepper
        self.invitations = InvitationRepository(session, principal.tenant_id)
        self.members = MembershipRepository(session, principal.tenant_id)

    async def _read(self, invitation_id: uuid.UUID, *, lock: bool = False) -> tuple[Invitation, str]:
        found = await self.invitations.with_status_of(invitation_id, lock="update" if lock else None)
        if found is None:
            raise NotFound(NOT_FOUND)
        return found

    async def _require_authority(self, role: str) -> None:
        """The inviter's current role, not the one the token resolved with, must grant `role`.

        Read FOR SHARE: a concurrent demotion, deactivation or removal (which locks the row FOR
        UPDATE) either waits for this invitation to exist and then revokes it, or goes first and
        is seen here.
        """
        inviter = await self.members.role_of(self.principal.membership_id, lock="share")
        if inviter is not None and role in grantable_roles(inviter.role, is_active=inviter.is_active):
            return
        if role == "owner":
            raise OwnerRequired("Only an owner may invite an owner.")
        raise PermissionDenied("members", "write")

    async def create(self, data: InvitationCreate) -> InvitationCreated:
        issued = generate_token(self.pepper, INVITATION_TOKEN_PREFIX)
        invitation_id = uuid7()
        async with self.uow.transaction():
            await self._require_authority(data.role)
            if await self.members.email_taken(normalize_email(data.email)):
                raise Conflict(ALREADY_MEMBER)
            await self.invitations.add(
                Invitation(
                    id=invitation_id,
                    email=data.email,
                    role=data.role,
                    token_digest=issued.digest,
                    invited_by_member_id=self.principal.membership_id,
                    expires_at=datetime.now(UTC) + timedelta(days=data.expires_in_days),
                )
            )
            invitation, status = await self._read(invitation_id)
            await record_event(
                self.session,
                "invitation.created",
                "invitation",
                invitation_id,
                details={"email": data.email, "role": data.role, "expires_at": invitation.expires_at.isoformat()},
            )
        return InvitationCreated(**msgspec.structs.asdict(_out(invitation, status)), token=issued.token)

    async def list(self, page: PageRequest, filters: InvitationFilters) -> Page[InvitationOut]:
        async with self.uow.transaction():
            return await self.invitations.page(
                self.invitations.matching(filters),
                page=page,
                ordering=Ordering.by_id(Invitation.id),
                key=self.cursor_key,
                filters=filters,
                to_wire=lambda row: _out(row, row.effective_status),
                as_rows=True,
            )

    async def get(self, invitation_id: uuid.UUID) -> InvitationOut:
        async with self.uow.transaction():
            return _out(*await self._read(invitation_id))

    async def revoke(self, invitation_id: uuid.UUID) -> InvitationOut:
        async with self.uow.transaction():
            invitation, status = await self._read(invitation_id, lock=True)
            if status != "pending":
                raise Conflict(f"Only a pending invitation can be revoked; this one is {status}.")
            invitation.status = "revoked"
            invitation.revoked_at = datetime.now(UTC)
            await record_event(self.session, "invitation.revoked", "invitation", invitation.id)
            await self.session.flush()
            return _out(*await self._read(invitation.id))


class InvitationAcceptService:
    """The public side, on a platform-role session (users are a global table)."""

    def __init__(self, session: AsyncSession, settings: Settings, engine: AsyncEngine) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.settings = settings
        self.engine = engine
        self.workspaces = WorkspaceRepository(session)
        self.users = UserRepository(session)

    async def accept(self, data: InvitationAccept) -> AcceptedInvitation:
        if not is_well_formed(data.token, INVITATION_TOKEN_PREFIX):
            raise InvitationUnavailable
        found = await resolve_invitation(self.engine, token_digest(data.token, self.settings.token_pepper))
        if found is None:
            raise InvitationUnavailable
        tenant_id, invitation_id = found
        with tenant_scope(tenant_id):
            await self._ensure_account(tenant_id, invitation_id)
            return await self._complete(tenant_id, invitation_id, data)

    async def _ensure_account(self, tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
        """Create the invitee's account, if new, in a transaction of its own before the acceptance.

        On Citus (docs/scale-out.md) `users` is a reference table and `memberships` is distributed:
        a user row written by the platform role's worker connection is not visible to the tenant
        role's connection, which inserts the membership and checks its key, until it commits. So
        the acceptance below only finds the account. Checked as there, without locks; if the
        invitation changes meanwhile the acceptance fails and the account stays without a password
        or a membership, as an account whose memberships were all removed.
        """
        invitations = InvitationRepository(self.session, tenant_id)
        members = MembershipRepository(self.session, tenant_id)
        async with self.uow.transaction():
            invitation = await self._lock_usable(invitations, members, invitation_id, lock=False)
            await self._available_workspace(tenant_id)
            await self._user(invitation.email)

    async def _become(self, role: str, tenant_id: uuid.UUID) -> None:
        """Switch the open transaction's role (SET LOCAL ROLE), keeping the tenant as it is.

        Invitations are written by the tenant role only (the platform role may read them), and
        users by the platform role only, so accepting crosses once in each direction.
        """
        await self.uow.become(role, tenant_id=tenant_id)

    async def _lock_usable(
        self,
        invitations: InvitationRepository,
        members: MembershipRepository,
        invitation_id: uuid.UUID,
        *,
        lock: bool = True,
    ) -> Invitation:
        """The invitation, locked (unless `lock` is false), if it is pending and its inviter may
        still grant its role."""
        found = await invitations.with_status_of(invitation_id, lock="update" if lock else None)
        if found is None or found[1] != "pending":
            raise InvitationUnavailable
        invitation = found[0]
        if invitation.invited_by_member_id is None:  # the inviter was removed
            raise InvitationUnavailable
        # No lock on the inviter's row: a change of it revokes this invitation in its own
        # transaction, so it either committed before (seen here, or the invitation is revoked)
        # or waits for our lock on the invitation and then finds it accepted.
        inviter = await members.role_of(invitation.invited_by_member_id)
        if inviter is None or invitation.role not in grantable_roles(inviter.role, is_active=inviter.is_active):
            raise InvitationUnavailable
        return invitation

    async def _complete(
        self, tenant_id: uuid.UUID, invitation_id: uuid.UUID, data: InvitationAccept
    ) -> AcceptedInvitation:
        invitations = InvitationRepository(self.session, tenant_id)
        members = MembershipRepository(self.session, tenant_id)
        # A unique violation here is a concurrent accept for the same account.
        async with self.uow.transaction(unique=_ALREADY_MEMBER):
            await self._become(self.settings.tenant_role, tenant_id)
            invitation = await self._lock_usable(invitations, members, invitation_id)

            await self._become(self.settings.platform_role, tenant_id)
            max_days = await self._available_workspace(tenant_id)
            user_id = await self._user(invitation.email)
            # The account's email as stored, read here: on Citus member_emails() may not read the
            # membership inserted below in this transaction (MemberService._email_first).
            account = await self.users.get(user_id)
            member_email = account.email if account is not None else invitation.email

            await self._become(self.settings.tenant_role, tenant_id)
            if await members.of_user(user_id) is not None:
                raise Conflict(ALREADY_MEMBER)
            membership = await members.add(
                Membership(id=uuid7(), user_id=user_id, role=invitation.role, display_name=data.display_name)
            )
            token, principal = await issue_member_token(
                self.session,
                self.settings,
                tenant_id=tenant_id,
                user_id=user_id,
                membership_id=membership.id,
                role=membership.role,
                name=ACCEPTED_TOKEN_NAME,
                lifetime=min(ACCEPTED_TOKEN_LIFETIME, timedelta(days=max_days)),
            )
            invitation.status = "accepted"
            invitation.accepted_at = datetime.now(UTC)
            invitation.accepted_member_id = membership.id
            with acting_as(principal):
                # Nothing here says whether the account existed: the tenant reads this log.
                await record_event(
                    self.session,
                    "invitation.accepted",
                    "invitation",
                    invitation.id,
                    details={
                        "member_id": str(membership.id),
                        "role": membership.role,
                        "token_id": str(token.token_id),
                    },
                )
            await self.session.flush()  # as the tenant role, before the commit
        return AcceptedInvitation(member=member_out(membership, member_email), token=token)

    async def _available_workspace(self, tenant_id: uuid.UUID) -> int:
        """The workspace's token-lifetime cap; a suspended one answers as the middleware would."""
        workspace = await self.workspaces.get(tenant_id)
        if workspace is None or workspace.status == "purged":
            raise InvitationUnavailable
        if workspace.status != "active":
            raise WorkspaceUnavailable(workspace.status)
        return int(workspace.max_token_lifetime_days)

    async def _user(self, email: str) -> uuid.UUID:
        """The id of the account with this email, created without a password if there is none.

        An existing account is only looked up, never written (see `UserRepository.ensure`).
        """
        user_id = await self.users.ensure(email)
        if user_id is None:  # the conflicting account was deleted between the two statements
            raise Conflict("The account changed meanwhile; accept the invitation again.")
        return user_id
