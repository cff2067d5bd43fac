"""Member use cases: list, profiles, role changes, deactivation, removal.

Two invariants are kept here, inside the transaction of each change:
- only an active owner may make, unmake, change, deactivate, reactivate or remove an owner;
- the workspace always keeps at least one active owner.
Both read the set of active owners locked with SELECT ... FOR UPDATE, always before the target
row (one lock order for every change, so two changes never deadlock), and a concurrent change of
any owner waits for it. Two owners demoting each other at once: the second sees the first's
commit and is refused.

Role and activity are read by the token resolver on every request, so a demotion narrows the
member's tokens, and a deactivation stops them, on the very next request.

An invitation is only as good as its inviter's authority: a demotion (to a role that can no longer
grant what was invited), a deactivation or a removal revokes the member's pending invitations it
takes the authority for, in the same transaction, each with an `invitation.revoked` event. Accepting
re-checks the inviter too (see invitations.py), so an invitation made in the same instant as the
change is unusable all the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from msgspec import UNSET
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.principal import Principal
from tenantry.core.errors import Conflict, NotFound
from tenantry.core.schemas import Page
from tenantry.members.errors import OwnerRequired
from tenantry.members.models import Membership
from tenantry.members.repository import InvitationRepository, MembershipRepository
from tenantry.members.schemas import MemberFilters, MemberOut, MemberUpdate, ProfileUpdate
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork

NOT_FOUND = "The resource was not found."
LAST_OWNER = "The workspace must keep at least one active owner; make another member an owner first."
OWNER_ONLY = "Only an owner may grant or remove the owner role, or change, deactivate or remove an owner."


# Which roles a member may grant by invitation: an owner any, an admin any but owner, others none.
GRANTABLE_ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset({"owner", "admin", "member", "viewer"}),
    "admin": frozenset({"admin", "member", "viewer"}),
}


def grantable_roles(role: str | None, *, is_active: bool = True) -> frozenset[str]:
    """The roles a membership with `role` may invite someone as; none for an inactive one."""
    return GRANTABLE_ROLES.get(role or "", frozenset()) if is_active else frozenset()


def member_out(member: Any, email: str | None) -> MemberOut:
    """A membership (object or row) and its email, as the wire sees it."""
    return MemberOut(
        id=member.id,
        email=email or "",
        display_name=member.display_name,
        role=member.role,
        is_active=member.is_active,
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


class MemberService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.tenant_id = principal.tenant_id
        self.cursor_key = cursor_key
        self.members = MembershipRepository(session, principal.tenant_id)
        self.invitations = InvitationRepository(session, principal.tenant_id)

    # -- reads ---------------------------------------------------------------------------------

    async def _read(self, member_id: uuid.UUID) -> MemberOut:
        found = await self.members.with_email(member_id)
        if found is None:
            raise NotFound(NOT_FOUND)
        return member_out(*found)

    async def list(self, page: PageRequest, filters: MemberFilters) -> Page[MemberOut]:
        async def with_emails(rows: list[Membership]) -> list[MemberOut]:
            emails = await self.members.emails_of([row.id for row in rows])
            return [member_out(row, emails.get(row.id)) for row in rows]

        async with self.uow.transaction():
            return await self.members.page(
                self.members.matching(filters),
                page=page,
                ordering=Ordering.by_id(Membership.id),
                key=self.cursor_key,
                filters=filters,
                enrich=with_emails,
            )

    async def get(self, member_id: uuid.UUID) -> MemberOut:
        async with self.uow.transaction():
            return await self._read(member_id)

    async def me(self) -> MemberOut:
        return await self.get(self.principal.membership_id)

    # -- changes -------------------------------------------------------------------------------

    async def _lock(self, member_id: uuid.UUID) -> Membership:
        member = await self.members.get(member_id, lock="update")
        if member is None:
            raise NotFound(NOT_FOUND)
        return member

    async def _lock_for_change(self, member_id: uuid.UUID) -> tuple[Membership, Sequence[uuid.UUID]]:
        owners = await self.members.lock_active_owners()  # always first: one lock order for every change
        return await self._lock(member_id), owners

    def _require_owner(self, owners: Sequence[uuid.UUID]) -> None:
        # The locked owner set, not the role the token resolved with: it is current and cannot
        # change under us until this transaction ends.
        if self.principal.membership_id not in owners:
            raise OwnerRequired(OWNER_ONLY)

    @staticmethod
    def _keep_an_owner(member: Membership, owners: Sequence[uuid.UUID]) -> None:
        """Refuse when `member` is the only active owner and is about to stop being one."""
        if member.role == "owner" and member.is_active and not any(o != member.id for o in owners):
            raise Conflict(LAST_OWNER)

    async def _email_first(self, member_id: uuid.UUID) -> str | None:
        """The member's email, read before the transaction locks or writes any membership row.

        On Citus, member_emails() (SECURITY DEFINER) reads memberships on the workers as the owner
        role, which Citus refuses once the tenant role has locked or changed them in the same
        transaction (docs/scale-out.md). An email is not changed by anything here.
        """
        return await self.members.email_of(member_id)

    async def _save(self, member: Membership, email: str | None) -> MemberOut:
        member.updated_at = datetime.now(UTC)
        await self.members.save(member)
        return member_out(member, email)

    async def _revoke_invitations_beyond(self, member: Membership, keep: frozenset[str], reason: str) -> None:
        """Revoke the member's pending invitations for roles outside `keep`, each with its event.

        Runs after the member's row is locked: an accept of one of these invitations either
        finished first (the invitation is no longer pending and is left alone) or waits for this
        transaction and then finds it revoked.
        """
        revoked = await self.invitations.revoke_pending_of(member.id, keep=keep)
        for invitation_id in revoked:
            await record_event(
                self.session, "invitation.revoked", "invitation", invitation_id, details={"reason": reason}
            )

    async def update(self, member_id: uuid.UUID, data: MemberUpdate) -> MemberOut:
        async with self.uow.transaction():
            email = await self._email_first(member_id)
            member, owners = await self._lock_for_change(member_id)
            if member.role == "owner" or data.role == "owner":
                self._require_owner(owners)
            changed = False
            if data.role is not UNSET and data.role != member.role:
                if data.role != "owner":
                    self._keep_an_owner(member, owners)
                previous, member.role = member.role, data.role
                await record_event(
                    self.session,
                    "member.role_changed",
                    "member",
                    member.id,
                    details={"from": previous, "to": data.role},
                )
                await self._revoke_invitations_beyond(member, grantable_roles(data.role), "inviter_demoted")
                changed = True
            if data.display_name is not UNSET and data.display_name != member.display_name:
                member.display_name = data.display_name
                await record_event(
                    self.session, "member.profile_updated", "member", member.id, details={"fields": ["display_name"]}
                )
                changed = True
            return await self._save(member, email) if changed else member_out(member, email)

    async def update_profile(self, data: ProfileUpdate) -> MemberOut:
        """A member's own profile: no role needed beyond holding a valid token."""
        async with self.uow.transaction():
            email = await self._email_first(self.principal.membership_id)
            member = await self._lock(self.principal.membership_id)
            if data.display_name == member.display_name:
                return member_out(member, email)
            member.display_name = data.display_name
            await record_event(
                self.session, "member.profile_updated", "member", member.id, details={"fields": ["display_name"]}
            )
            return await self._save(member, email)

    async def deactivate(self, member_id: uuid.UUID) -> MemberOut:
        """All the member's tokens in this workspace fail from the next request on."""
        async with self.uow.transaction():
            email = await self._email_first(member_id)
            member, owners = await self._lock_for_change(member_id)
            if member.role == "owner":
                self._require_owner(owners)
            if not member.is_active:
                return member_out(member, email)
            self._keep_an_owner(member, owners)
            member.is_active = False
            await record_event(self.session, "member.deactivated", "member", member.id)
            await self._revoke_invitations_beyond(member, frozenset(), "inviter_deactivated")
            return await self._save(member, email)

    async def reactivate(self, member_id: uuid.UUID) -> MemberOut:
        """The member's tokens that are neither expired nor revoked work again."""
        async with self.uow.transaction():
            email = await self._email_first(member_id)
            member, owners = await self._lock_for_change(member_id)
            if member.role == "owner":
                self._require_owner(owners)
            if member.is_active:
                return member_out(member, email)
            member.is_active = True
            await record_event(self.session, "member.reactivated", "member", member.id)
            return await self._save(member, email)

    async def remove(self, member_id: uuid.UUID) -> None:
        """Remove the membership; its tokens go with it (ON DELETE CASCADE). The user stays."""
        async with self.uow.transaction():
            email = await self._email_first(member_id)
            member, owners = await self._lock_for_change(member_id)
            if member.role == "owner":
                self._require_owner(owners)
            self._keep_an_owner(member, owners)
            await self._revoke_invitations_beyond(member, frozenset(), "inviter_removed")
            await self.members.remove(member)
            # Tenants see membership ids and emails, never the global user id.
            await record_event(
                self.session, "member.removed", "member", member.id, details={"email": email or "", "role": member.role}
            )
