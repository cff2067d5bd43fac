"""Invitations: create, list, get and revoke (tenant side), and accept (public, by token).

The invitation token (`tni_...`) is returned once, to the inviter; only its HMAC digest is stored.
'expired' is never stored: a pending invitation past `expires_at` reads as expired.

Accepting runs without a bearer token. The token's digest names the workspace through the
SECURITY DEFINER resolve_invitation() (called as the app login role, like the token resolver); from then on everything runs with that workspace as the
tenant. The password work (argon2id) happens before the final transaction, so no lock is held
while it runs; the final transaction then locks the invitation, re-checks it, and creates the
user (if new), the membership and a first token, and marks the invitation accepted, all at once.

An existing account with a password must give it (throttled like a login, or an inviter holding
the token could guess passwords through this door), and an existing account without a password
does not get one from here: the inviter sees the token too, and must never be able to set the
password of someone else's account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Select, and_, case, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tenantry.audit.recorder import record_event
from tenantry.auth.tokens import INVITATION_TOKEN_PREFIX, generate_token, is_well_formed, token_digest
from tenantry.core.context import Principal, tenant_scope
from tenantry.core.db import SET_TRANSACTION_CONTEXT, transaction_context
from tenantry.core.errors import Conflict, InvalidInput, NotFound, WorkspaceUnavailable
from tenantry.core.ids import uuid7
from tenantry.core.pagination import decode_cursor, encode_cursor
from tenantry.core.schemas import Page
from tenantry.core.sqlstate import UNIQUE_VIOLATION, sqlstate_of
from tenantry.members.errors import InvitationUnavailable, OwnerRequired
from tenantry.members.models import Invitation, Membership
from tenantry.members.schemas import (
    AcceptedInvitation,
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
)
from tenantry.members.service import NOT_FOUND, member_emails, member_out
from tenantry.settings import Settings
from tenantry.users.errors import InvalidCredentials
from tenantry.users.login import acting_as, issue_member_token
from tenantry.users.models import User
from tenantry.users.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from tenantry.users.throttle import LoginThrottle, normalize_email, throttle_keys
from tenantry.workspaces.models import Workspace

ACCEPTED_TOKEN_LIFETIME = timedelta(days=90)
ACCEPTED_TOKEN_NAME = "invitation token"  # noqa: S105 - a display name, not a secret
ALREADY_MEMBER = "This account is already a member of the workspace."

# The status a reader sees: 'expired' is computed, by the database clock, never stored.
_STATUS = case(
    (and_(Invitation.status == "pending", Invitation.expires_at <= func.now()), "expired"),
    else_=Invitation.status,
).label("effective_status")


def _out(invitation: Invitation, status: str) -> InvitationOut:
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
        self.principal = principal
        self.tenant_id = principal.tenant_id
        self.cursor_key = cursor_key
        self.pepper = pepper

    def _select(self) -> Select[Any]:
        return select(Invitation, _STATUS).where(Invitation.tenant_id == self.tenant_id)

    async def _read(self, invitation_id: uuid.UUID, *, lock: bool = False) -> tuple[Invitation, str]:
        query = self._select().where(Invitation.id == invitation_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            raise NotFound(NOT_FOUND)
        return row[0], row[1]

    async def create(self, data: InvitationCreate) -> InvitationCreated:
        if data.role == "owner" and self.principal.role != "owner":
            raise OwnerRequired("Only an owner may invite an owner.")
        issued = generate_token(self.pepper, INVITATION_TOKEN_PREFIX)
        invitation_id = uuid7()
        async with self.session.begin():
            emails = member_emails()
            taken = await self.session.execute(
                select(emails.c.membership_id).where(func.lower(emails.c.email) == normalize_email(data.email))
            )
            if taken.first() is not None:
                raise Conflict(ALREADY_MEMBER)
            self.session.add(
                Invitation(
                    tenant_id=self.tenant_id,
                    id=invitation_id,
                    email=data.email,
                    role=data.role,
                    token_digest=issued.digest,
                    invited_by_member_id=self.principal.membership_id,
                    expires_at=datetime.now(UTC) + timedelta(days=data.expires_in_days),
                )
            )
            await self.session.flush()
            invitation, status = await self._read(invitation_id)
            await record_event(
                self.session,
                "invitation.created",
                "invitation",
                invitation_id,
                details={"email": data.email, "role": data.role, "expires_at": invitation.expires_at.isoformat()},
            )
        return InvitationCreated(**msgspec.structs.asdict(_out(invitation, status)), token=issued.token)

    async def list(self, *, limit: int, cursor: str | None, status: str | None) -> Page[InvitationOut]:
        binding = f"invitations:{self.tenant_id}:{status or ''}"
        after = decode_cursor(cursor, key=self.cursor_key, binding=binding) if cursor else None
        query = self._select()
        if status == "expired":
            query = query.where(Invitation.status == "pending", Invitation.expires_at <= func.now())
        elif status == "pending":
            query = query.where(Invitation.status == "pending", Invitation.expires_at > func.now())
        elif status is not None:
            query = query.where(Invitation.status == status)
        if after is not None:
            query = query.where(Invitation.id > after)
        async with self.session.begin():
            rows = list((await self.session.execute(query.order_by(Invitation.id).limit(limit + 1))).all())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0].id, key=self.cursor_key, binding=binding) if has_more else None
        return Page(data=[_out(i, s) for i, s in rows], has_more=has_more, next_cursor=next_cursor)

    async def get(self, invitation_id: uuid.UUID) -> InvitationOut:
        async with self.session.begin():
            return _out(*await self._read(invitation_id))

    async def revoke(self, invitation_id: uuid.UUID) -> InvitationOut:
        async with self.session.begin():
            invitation, status = await self._read(invitation_id, lock=True)
            if status != "pending":
                raise Conflict(f"Only a pending invitation can be revoked; this one is {status}.")
            invitation.status = "revoked"
            invitation.revoked_at = datetime.now(UTC)
            await record_event(self.session, "invitation.revoked", "invitation", invitation.id)
            await self.session.flush()
            return _out(*await self._read(invitation.id))


@dataclass(frozen=True, slots=True)
class _Invitee:
    """What the accept transaction needs to know about the account, settled before it starts."""

    user_id: uuid.UUID | None  # None: a new account, created with `password_hash`
    password_hash: str | None = None  # for a new account, its hash; for an existing one, a rehash
    previous_hash: str | None = None


class InvitationAcceptService:
    """The public side, on a platform-role session (users are a global table)."""

    def __init__(self, session: AsyncSession, settings: Settings, engine: AsyncEngine, throttle: LoginThrottle) -> None:
        self.session = session
        self.settings = settings
        self.engine = engine
        self.throttle = throttle

    async def accept(self, data: InvitationAccept, client_address: str) -> AcceptedInvitation:
        if not is_well_formed(data.token, INVITATION_TOKEN_PREFIX):
            raise InvitationUnavailable
        # Like the token resolver: the app login role itself, on a short connection of its own (the
        # function is granted to that role only, and the tenant is not known yet).
        async with self.engine.begin() as connection:
            found = (
                await connection.execute(
                    text("SELECT tenant_id, invitation_id FROM public.resolve_invitation(:digest)"),
                    {"digest": token_digest(data.token, self.settings.token_pepper)},
                )
            ).first()
        if found is None:
            raise InvitationUnavailable
        tenant_id, invitation_id = found
        with tenant_scope(tenant_id):
            email = await self._pending_email(tenant_id, invitation_id)
            invitee = await self._settle_account(email, data, client_address)
            return await self._complete(tenant_id, invitation_id, email, invitee, data)

    async def _become(self, role: str, tenant_id: uuid.UUID) -> None:
        """Switch the open transaction's role (SET LOCAL ROLE), keeping the tenant as it is.

        Invitations are written by the tenant role only (the platform role may read them), and
        users by the platform role only, so accepting crosses once in each direction.
        """
        await self.session.execute(
            SET_TRANSACTION_CONTEXT,
            transaction_context(role, tenant_id, None, str(self.settings.db_statement_timeout_ms)),
        )

    async def _pending_email(self, tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> str:
        async with self.session.begin():
            row = (
                await self.session.execute(
                    select(Invitation.email, _STATUS).where(
                        Invitation.tenant_id == tenant_id, Invitation.id == invitation_id
                    )
                )
            ).first()
        if row is None or row.effective_status != "pending":
            raise InvitationUnavailable
        return str(row.email)

    async def _settle_account(self, email: str, data: InvitationAccept, client_address: str) -> _Invitee:
        """Check or prepare the credentials, outside any transaction (argon2id takes a while)."""
        normalized = normalize_email(email)
        async with self.session.begin():
            user = (
                await self.session.execute(
                    select(User.id, User.password_hash).where(func.lower(User.email) == normalized)
                )
            ).first()
        if user is None:
            if data.password is None or len(data.password) < MIN_PASSWORD_LENGTH:
                raise InvalidInput(
                    f"A password of at least {MIN_PASSWORD_LENGTH} characters is required to create the account."
                )
            return _Invitee(user_id=None, password_hash=await hash_password(data.password))
        if user.password_hash is None:
            return _Invitee(user_id=user.id)
        if data.password is None:
            raise InvalidCredentials
        keys = throttle_keys(normalized, client_address)
        await self.throttle.admit(keys)
        verification = await verify_password(user.password_hash, data.password)
        if not verification.ok:
            raise InvalidCredentials
        await self.throttle.succeeded(keys)
        return _Invitee(user_id=user.id, password_hash=verification.new_hash, previous_hash=user.password_hash)

    async def _complete(
        self, tenant_id: uuid.UUID, invitation_id: uuid.UUID, email: str, invitee: _Invitee, data: InvitationAccept
    ) -> AcceptedInvitation:
        try:
            async with self.session.begin():
                await self._become(self.settings.tenant_role, tenant_id)
                row = (
                    await self.session.execute(
                        select(Invitation, _STATUS)
                        .where(Invitation.tenant_id == tenant_id, Invitation.id == invitation_id)
                        .with_for_update()
                    )
                ).first()
                if row is None or row.effective_status != "pending":
                    raise InvitationUnavailable
                invitation: Invitation = row[0]

                await self._become(self.settings.platform_role, tenant_id)
                max_days = await self._available_workspace(tenant_id)
                user_id = await self._user(email, invitee)

                await self._become(self.settings.tenant_role, tenant_id)
                already = await self.session.execute(
                    select(Membership.id).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
                )
                if already.first() is not None:
                    raise Conflict(ALREADY_MEMBER)
                membership = Membership(
                    tenant_id=tenant_id,
                    id=uuid7(),
                    user_id=user_id,
                    role=invitation.role,
                    display_name=data.display_name,
                )
                self.session.add(membership)
                await self.session.flush()
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
                await self.session.refresh(membership)
                emails = member_emails()
                member_email = (
                    await self.session.execute(select(emails.c.email).where(emails.c.membership_id == membership.id))
                ).scalar_one()
        except IntegrityError as exc:
            if sqlstate_of(exc) == UNIQUE_VIOLATION:  # a concurrent accept for the same account
                raise Conflict(ALREADY_MEMBER) from None
            raise
        return AcceptedInvitation(member=member_out(membership, member_email), token=token)

    async def _available_workspace(self, tenant_id: uuid.UUID) -> int:
        """The workspace's token-lifetime cap; a suspended one answers as the middleware would."""
        workspace = (
            await self.session.execute(
                select(Workspace.status, Workspace.max_token_lifetime_days).where(Workspace.id == tenant_id)
            )
        ).first()
        if workspace is None or workspace.status == "purged":
            raise InvitationUnavailable
        if workspace.status != "active":
            raise WorkspaceUnavailable(workspace.status)
        return int(workspace.max_token_lifetime_days)

    async def _user(self, email: str, invitee: _Invitee) -> uuid.UUID:
        """The account's id, creating it (new) or storing a rehash (existing) as settled before."""
        if invitee.user_id is None:
            created = (
                await self.session.execute(
                    text(
                        "INSERT INTO public.users (id, email, password_hash) VALUES (:id, :email, :hash) "
                        "ON CONFLICT ((lower(email))) DO NOTHING RETURNING id"
                    ),
                    {"id": uuid7(), "email": email, "hash": invitee.password_hash},
                )
            ).scalar_one_or_none()
            if created is None:  # created by someone else since we looked: their password, not ours
                raise Conflict("An account with this email was created meanwhile; accept the invitation again.")
            return uuid.UUID(str(created))
        if invitee.password_hash is not None:
            # Transparent rehash; skipped if the password changed since it was verified.
            await self.session.execute(
                text(
                    "UPDATE public.users SET password_hash = :new, updated_at = now() "
                    "WHERE id = :id AND password_hash = :old"
                ),
                {"id": invitee.user_id, "new": invitee.password_hash, "old": invitee.previous_hash},
            )
        return invitee.user_id
