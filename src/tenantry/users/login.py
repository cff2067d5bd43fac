"""Password login: email + password + workspace slug -> a short-lived personal access token.

Every wrong credential (unknown email, wrong or missing password, unknown workspace, not a member,
inactive member) gets the same 401 body after the same work: the same lookups run whatever is
missing, and exactly one argon2id verification runs (against a dummy hash when there is no stored
one). The throttle counts the attempt before anything else, so a refused attempt verifies nothing
(users/throttle.py: back-off per account and per address prefix, never a lockout).
Only once the credentials are right does a suspended workspace answer 403, as the middleware would.

Also here, because invitations use them too: `issue_member_token` (a PAT for a member) and `acting_as` (the audit actor for a caller who has no bearer token yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.permissions import role_permissions
from tenantry.auth.principal import Principal, current_principal
from tenantry.auth.tokens import token_fingerprint
from tenantry.core.errors import WorkspaceUnavailable
from tenantry.members.repository import MembershipRepository
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.tokens.issuing import new_personal_access_token
from tenantry.tokens.repository import TokenRepository
from tenantry.users.errors import InvalidCredentials
from tenantry.users.passwords import verify_password
from tenantry.users.repository import UserRepository
from tenantry.users.schemas import IssuedTokenOut, PasswordLogin
from tenantry.users.throttle import LoginThrottle, normalize_email, throttle_keys
from tenantry.workspaces.repository import WorkspaceRepository

# Stands in for a missing user or workspace, so the membership lookup runs in every case.
_NOBODY = uuid.UUID(int=0)
_UNAVAILABLE_STATUSES = ("suspended", "pending_deletion")


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Make `principal` the audit actor inside the block (for callers who authenticated in the body)."""
    reset = current_principal.set(principal)
    try:
        yield
    finally:
        current_principal.reset(reset)


async def issue_member_token(
    session: AsyncSession,
    settings: Settings,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    membership_id: uuid.UUID,
    role: str,
    name: str,
    lifetime: timedelta,
) -> tuple[IssuedTokenOut, Principal]:
    """Add a PAT with the role's permissions to the session's open transaction.

    Returns the token for the response and the principal it stands for (the audit actor).
    """
    permissions = role_permissions(role)
    row, issued = new_personal_access_token(
        settings.token_pepper,
        tenant_id=tenant_id,
        membership_id=membership_id,
        name=name,
        permissions=permissions,
        expires_at=datetime.now(UTC) + lifetime,
    )
    await TokenRepository(session, tenant_id).add(row, refresh=False)
    principal = Principal(
        token_id=row.id,
        tenant_id=tenant_id,
        user_id=user_id,
        membership_id=membership_id,
        role=role,
        token_permissions=permissions,
        token_fingerprint=token_fingerprint(issued.token),
    )
    out = IssuedTokenOut(token=issued.token, token_id=row.id, expires_at=row.expires_at, permissions=permissions)
    return out, principal


@dataclass(frozen=True, slots=True)
class _Candidate:
    """What the directory says of the login attempt; any part may be missing."""

    user_id: uuid.UUID | None
    password_hash: str | None
    workspace_id: uuid.UUID | None
    workspace_status: str | None
    max_token_lifetime_days: int
    membership_id: uuid.UUID | None
    role: str | None
    member_active: bool

    @property
    def complete(self) -> bool:
        return (
            self.user_id is not None
            and self.membership_id is not None
            and self.member_active
            and self.workspace_status not in (None, "purged")
        )


class PasswordLoginService:
    """Runs on a platform-role session: users and workspaces are global tables.

    A login is several short transactions by design (count the attempt, look up, issue), never one
    long one: the argon2id verification runs between them, with no transaction or lock held.
    """

    def __init__(self, session: AsyncSession, settings: Settings, throttle: LoginThrottle) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.settings = settings
        self.throttle = throttle
        self.users = UserRepository(session)
        self.workspaces = WorkspaceRepository(session)

    async def login(self, data: PasswordLogin, client_address: str) -> IssuedTokenOut:
        email = normalize_email(data.email)
        keys = throttle_keys(email, client_address)
        admission = await self.throttle.admit(keys)
        candidate = await self._lookup(email, data.workspace.lower())
        verification = await verify_password(candidate.password_hash, data.password)
        if not (verification.ok and candidate.complete):
            raise InvalidCredentials
        await self.throttle.succeeded(admission)
        if candidate.workspace_status in _UNAVAILABLE_STATUSES:
            raise WorkspaceUnavailable(str(candidate.workspace_status))
        return await self._issue(candidate, data, verification.new_hash)

    async def _lookup(self, email: str, slug: str) -> _Candidate:
        async with self.uow.transaction():
            user = await self.users.credentials(email)
            workspace = await self.workspaces.login_target(slug)
        tenant_id = workspace.id if workspace else _NOBODY
        user_id = user.id if user else _NOBODY
        with tenant_scope(tenant_id):
            async with self.uow.transaction():
                member = await MembershipRepository(self.session, tenant_id).login_candidate(user_id)
        return _Candidate(
            user_id=user.id if user else None,
            password_hash=user.password_hash if user else None,
            workspace_id=workspace.id if workspace else None,
            workspace_status=workspace.status if workspace else None,
            max_token_lifetime_days=workspace.max_token_lifetime_days if workspace else 1,
            membership_id=member.id if member else None,
            role=member.role if member else None,
            member_active=bool(member and member.is_active),
        )

    async def _issue(self, candidate: _Candidate, data: PasswordLogin, new_hash: str | None) -> IssuedTokenOut:
        if not (candidate.workspace_id and candidate.user_id and candidate.membership_id and candidate.role):
            raise InvalidCredentials  # unreachable after `complete`; keeps the types honest
        lifetime = min(timedelta(seconds=data.expires_in_seconds), timedelta(days=candidate.max_token_lifetime_days))
        with tenant_scope(candidate.workspace_id, candidate.user_id):
            async with self.uow.transaction():
                if new_hash is not None:
                    # Transparent rehash; skipped if the password changed since it was verified.
                    await self.users.rehash(candidate.user_id, candidate.password_hash, new_hash)
                token, principal = await issue_member_token(
                    self.session,
                    self.settings,
                    tenant_id=candidate.workspace_id,
                    user_id=candidate.user_id,
                    membership_id=candidate.membership_id,
                    role=candidate.role,
                    name=data.name,
                    lifetime=lifetime,
                )
                with acting_as(principal):
                    await record_event(
                        self.session,
                        "auth.token_issued",
                        "token",
                        token.token_id,
                        details={"method": "password", "name": data.name, "expires_at": token.expires_at.isoformat()},
                    )
        return token
