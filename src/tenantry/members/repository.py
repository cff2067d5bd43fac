"""Tenant-scoped data access for memberships and invitations (tenant filter: tenancy/repository.py).

Emails are not in the membership table: users are global, and a tenant reads its members' emails
only through the SECURITY DEFINER function member_emails(), which answers for the current tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, Uuid, and_, case, column, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.members.models import Invitation, Membership
from tenantry.members.schemas import InvitationFilters, MemberFilters
from tenantry.tenancy.repository import AnyRow, Lock, TenantRepository

# The status a reader sees: 'expired' is computed, by the database clock, never stored.
EFFECTIVE_STATUS = case(
    (and_(Invitation.status == "pending", Invitation.expires_at <= func.now()), "expired"),
    else_=Invitation.status,
).label("effective_status")


async def resolve_invitation(engine: AsyncEngine, digest: bytes) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(workspace, invitation) of a pending invitation's token digest, before any tenant is known.

    Like the token resolver: the app login role itself, on a short connection of its own (the
    SECURITY DEFINER function is granted to that role only).
    """
    async with engine.begin() as connection:
        found = (
            await connection.execute(
                text("SELECT tenant_id, invitation_id FROM public.resolve_invitation(:digest)"), {"digest": digest}
            )
        ).first()
    return (found[0], found[1]) if found is not None else None


def member_emails() -> Any:
    """The SECURITY DEFINER function member_emails() as a table: emails of the current tenant only."""
    return func.member_emails().table_valued(column("membership_id", Uuid), column("email", String)).alias("emails")


class MembershipRepository(TenantRepository[Membership]):
    model = Membership
    resource = "members"

    # The emails are read by queries of their own, over member_emails() alone, never joined to
    # memberships: on Citus a join is pushed down to the worker with the function in it, and the
    # function's own read of the distributed memberships may not run there ("cannot execute a
    # distributed query from a query on a shard", docs/scale-out.md). Alone it runs on the
    # coordinator, like any query without a distributed table.

    async def with_email(self, member_id: uuid.UUID) -> tuple[Membership, str | None] | None:
        """The member and its email, or None."""
        member = await self.get(member_id)
        if member is None:
            return None
        return member, await self.email_of(member_id)

    def matching(self, filters: MemberFilters) -> Select[Any]:
        query = self.select()
        if filters.role is not None:
            query = query.where(Membership.role == filters.role)
        if filters.is_active is not None:
            query = query.where(Membership.is_active.is_(filters.is_active))
        return query

    async def emails_of(self, member_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The emails of these members of this workspace, by member id."""
        emails = member_emails()
        query = select(emails.c.membership_id, emails.c.email).where(emails.c.membership_id.in_(member_ids))
        return {row[0]: row[1] for row in (await self.session.execute(query)).all()}

    async def email_taken(self, email_lower: str) -> bool:
        """Whether a member of this workspace has this (lower-cased) email."""
        emails = member_emails()
        query = select(emails.c.membership_id).where(func.lower(emails.c.email) == email_lower)
        return await self.first(query) is not None

    async def email_of(self, member_id: uuid.UUID) -> str | None:
        emails = member_emails()
        return await self.scalar(select(emails.c.email).where(emails.c.membership_id == member_id))  # type: ignore[no-any-return]

    async def lock_active_owners(self) -> Sequence[uuid.UUID]:
        """The active owners' ids, locked FOR UPDATE in id order (one lock order for every change)."""
        query = (
            self.select(Membership.id)
            .where(Membership.role == "owner", Membership.is_active.is_(True))
            .order_by(Membership.id)
            .with_for_update()
        )
        return list(await self.scalars(query))

    async def role_of(self, member_id: uuid.UUID, *, lock: Lock | None = None) -> AnyRow | None:
        """(role, is_active) of a member, or None."""
        query = self.select(Membership.role, Membership.is_active).where(Membership.id == member_id)
        if lock == "share":
            query = query.with_for_update(read=True)
        return await self.first(query)

    async def of_user(self, user_id: uuid.UUID) -> uuid.UUID | None:
        return await self.scalar(self.select(Membership.id).where(Membership.user_id == user_id))  # type: ignore[no-any-return]

    async def login_candidate(self, user_id: uuid.UUID) -> AnyRow | None:
        """(id, role, is_active) of the user's membership, for password login."""
        return await self.first(
            self.select(Membership.id, Membership.role, Membership.is_active).where(Membership.user_id == user_id)
        )

    async def first_active_owner(self) -> uuid.UUID | None:
        query = (
            self.select(Membership.id)
            .where(Membership.role == "owner", Membership.is_active)
            .order_by(Membership.created_at)
            .limit(1)
        )
        return await self.scalar(query)  # type: ignore[no-any-return]

    async def counts(self) -> tuple[int, int]:
        """(all members, active members)."""
        row = (await self.session.execute(self.select(func.count(), func.count().filter(Membership.is_active)))).one()
        return int(row[0]), int(row[1])


class InvitationRepository(TenantRepository[Invitation]):
    model = Invitation
    resource = "invitations"

    def with_status(self) -> Select[Any]:
        """Invitation columns and the effective status, as plain rows."""
        return self.scoped(select(*Invitation.__table__.columns, EFFECTIVE_STATUS))

    async def with_status_of(
        self, invitation_id: uuid.UUID, *, lock: Lock | None = None
    ) -> tuple[Invitation, str] | None:
        """The invitation (a mapped object, to change it) and its effective status."""
        query = self.select(Invitation, EFFECTIVE_STATUS).where(Invitation.id == invitation_id)
        if lock == "update":
            # The row as locked, not an earlier transaction's copy from the session's identity map
            # (invitation acceptance reads it once before, unlocked: InvitationAcceptService).
            query = query.with_for_update().execution_options(populate_existing=True)
        row = await self.first(query)
        return (row[0], row[1]) if row is not None else None

    def matching(self, filters: InvitationFilters) -> Select[Any]:
        query = self.with_status()
        if filters.status == "expired":
            query = query.where(Invitation.status == "pending", Invitation.expires_at <= func.now())
        elif filters.status == "pending":
            query = query.where(Invitation.status == "pending", Invitation.expires_at > func.now())
        elif filters.status is not None:
            query = query.where(Invitation.status == filters.status)
        return query

    async def revoke_pending_of(self, inviter_id: uuid.UUID, *, keep: frozenset[str]) -> list[uuid.UUID]:
        """Revoke the inviter's pending, unexpired invitations for roles outside `keep`; their ids, sorted."""
        beyond = [
            self.tenant_filter(),
            Invitation.invited_by_member_id == inviter_id,
            Invitation.status == "pending",
            Invitation.expires_at > func.now(),  # an expired one stays expired: it cannot be used anyway
        ]
        if keep:
            beyond.append(Invitation.role.not_in(sorted(keep)))
        query = (
            update(Invitation)
            .where(*beyond)
            .values(status="revoked", revoked_at=func.now())
            .returning(Invitation.id)
            .execution_options(synchronize_session=False)
        )
        return sorted((await self.session.execute(query)).scalars())
