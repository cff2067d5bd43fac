"""Personal access token use cases, and the public leak report.

Each public method is one explicit transaction. A member manages their own tokens; a caller whose
effective level on "members" is write (owner, admin) may also list and revoke any token of the
workspace. Rotation stays with the token's member: it mints a secret that acts as that member.
A new token never carries more than the calling token can do right now.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from msgspec import UNSET, UnsetType
from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry.auditlog.recorder import record_event
from tenantry.auth.permissions import LEVELS, RESOURCES, effective_level
from tenantry.auth.principal import Principal
from tenantry.auth.tokens import ADMIN_TOKEN_PREFIX, TENANT_TOKEN_PREFIX, is_well_formed, token_digest
from tenantry.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenantry.core.schemas import Page, to_wire
from tenantry.http.problems import FieldError
from tenantry.http.requestlog import current_request_id
from tenantry.settings import Settings
from tenantry.tenancy.pagination import Ordering, PageRequest
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.tokens.issuing import new_personal_access_token
from tenantry.tokens.models import PersonalAccessToken
from tenantry.tokens.repository import TokenRepository, revoke_leaked, revoke_leaked_admin
from tenantry.tokens.schemas import (
    DEFAULT_TOKEN_LIFETIME_DAYS,
    MAX_TOKEN_LIFETIME_DAYS,
    LeakReportReceived,
    TokenCreate,
    TokenCreated,
    TokenFilters,
    TokenOut,
    TokenRotate,
)
from tenantry.users.throttle import Backoff, LoginThrottle, address_prefix

_NOT_FOUND = "The resource was not found."
LEAK_REPORTS_PER_WINDOW = 60  # per client address prefix per 15 minutes
LEAK_REPORT_WINDOW = timedelta(minutes=15)


def leak_report_policy() -> Backoff:
    """`LEAK_REPORTS_PER_WINDOW` reports, then a wait of the whole window (read at call time)."""
    window = LEAK_REPORT_WINDOW.total_seconds()
    return Backoff(free=LEAK_REPORTS_PER_WINDOW, base_s=window, cap_s=window, forget=LEAK_REPORT_WINDOW)


def _out(token: PersonalAccessToken) -> TokenOut:
    return to_wire(token, TokenOut)


def _created(token: PersonalAccessToken, clear: str) -> TokenCreated:
    view = _out(token)
    return TokenCreated(**{f: getattr(view, f) for f in view.__struct_fields__}, token=clear)


class TokenService:
    def __init__(self, session: AsyncSession, principal: Principal, cursor_key: bytes, pepper: str) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.principal = principal
        self.cursor_key = cursor_key
        self.pepper = pepper
        self.tokens = TokenRepository(session, principal.tenant_id)

    @property
    def _manages_members(self) -> bool:
        return self.principal.allows("members", "write")

    @property
    def _max_days(self) -> int:
        return min(self.principal.max_token_lifetime_days, MAX_TOKEN_LIFETIME_DAYS)

    async def create(self, data: TokenCreate) -> TokenCreated:
        days = self._lifetime_days(data.expires_in_days)
        permissions = self._grant(data.permissions)
        async with self.uow.transaction():
            token, issued = new_personal_access_token(
                self.pepper,
                tenant_id=self.principal.tenant_id,
                membership_id=self.principal.membership_id,
                name=data.name,
                permissions=permissions,
                # The database clock, like the resolver that compares against it.
                expires_at=func.now() + timedelta(days=days),
            )
            token.created_by_token_id = self.principal.token_id  # its fate follows the minting token's
            await self.tokens.add(token)
            await record_event(
                self.session,
                "token.created",
                "token",
                token.id,
                details={"name": token.name, "permissions": permissions, "expires_at": token.expires_at.isoformat()},
            )
        return _created(token, issued.token)

    async def list(self, page: PageRequest, *, include_revoked: bool, member_id: uuid.UUID | None) -> Page[TokenOut]:
        filters = TokenFilters(member_id=self._listable_member(member_id), include_revoked=include_revoked)
        async with self.uow.transaction():
            # Newest first: ids are UUIDv7, so their order is creation order.
            return await self.tokens.page(
                self.tokens.of_member(filters, visible=self._manageable()),
                page=page,
                ordering=Ordering.by_id(PersonalAccessToken.id, descending=True),
                key=self.cursor_key,
                filters=filters,
                to_wire=_out,
            )

    async def get(self, token_id: uuid.UUID) -> TokenOut:
        async with self.uow.transaction():
            return _out(await self._find(token_id, own_only=not self._manages_members))

    async def revoke(self, token_id: uuid.UUID) -> None:
        """Idempotent: revoking a revoked token changes nothing and records nothing."""
        async with self.uow.transaction():
            token = await self._find(token_id, own_only=not self._manages_members, lock=True)
            if token.revoked_at is not None:
                return
            token.revoked_at = func.now()
            await self.tokens.save(token)
            await record_event(
                self.session, "token.revoked", "token", token.id, details={"member_id": str(token.membership_id)}
            )

    async def rotate(self, token_id: uuid.UUID, data: TokenRotate) -> TokenCreated:
        async with self.uow.transaction():
            old = await self._find(token_id, own_only=True, lock=True)
            now = await self.tokens.now()
            if old.revoked_at is not None:
                raise Conflict("A revoked token cannot be rotated.")
            if old.replaced_by_id is not None:
                raise Conflict("This token was already rotated; rotate its replacement.")
            if old.expires_at <= now:
                raise Conflict("An expired token cannot be rotated.")
            # Rotating hands out a new secret: refused if it could do more than the calling token.
            self._refuse_escalation({r: effective_level(self.principal.role, old.permissions, r) for r in RESOURCES})
            lifetime = min(old.expires_at - old.created_at, timedelta(days=self._max_days))
            new, issued = new_personal_access_token(
                self.pepper,
                tenant_id=old.tenant_id,
                membership_id=old.membership_id,
                name=old.name,
                permissions=dict(old.permissions),
                expires_at=now + lifetime,
            )
            await self.tokens.add(new)  # first: the old row's replaced_by_id references it
            old.replaced_by_id = new.id
            old.rotated_at = now
            old.expires_at = min(old.expires_at, now + timedelta(seconds=data.grace_period_seconds))
            await self.tokens.save(old)
            await record_event(
                self.session,
                "token.rotated",
                "token",
                old.id,
                details={
                    "replaced_by_id": str(new.id),
                    "grace_period_seconds": data.grace_period_seconds,
                    "old_expires_at": old.expires_at.isoformat(),
                },
            )
        return _created(new, issued.token)

    def _lifetime_days(self, requested: int | UnsetType) -> int:
        if requested is UNSET:
            return min(DEFAULT_TOKEN_LIFETIME_DAYS, self._max_days)
        if requested > self._max_days:
            raise InvalidInput(
                f"Tokens of this workspace live at most {self._max_days} days.",
                errors=[FieldError(field="expires_in_days", message=f"must be at most {self._max_days}")],
            )
        return requested

    def _grant(self, requested: dict[str, str] | UnsetType) -> dict[str, str]:
        """The permissions to store: every resource named, none above the calling token's level."""
        if requested is UNSET:
            return {r: self.principal.level(r) for r in RESOURCES}
        errors = []
        for resource, level in requested.items():
            field = f"permissions.{resource[:64]}"
            if resource not in RESOURCES:
                errors.append(
                    FieldError(field=field, message=f"unknown resource; expected one of {', '.join(RESOURCES)}")
                )
            elif level not in LEVELS:
                errors.append(FieldError(field=field, message="must be one of none, read, write"))
        if errors:
            raise InvalidInput("The permissions name an unknown resource or level.", errors=errors)
        grant = {r: requested.get(r, "none") for r in RESOURCES}
        self._refuse_escalation(grant)
        return grant

    def _refuse_escalation(self, levels: dict[str, str]) -> None:
        for resource in RESOURCES:
            wanted = levels.get(resource, "none")
            if LEVELS[wanted] > LEVELS[self.principal.level(resource)]:
                raise PermissionDenied(resource, wanted)

    def _listable_member(self, member_id: uuid.UUID | None) -> uuid.UUID:
        if member_id is None or member_id == self.principal.membership_id:
            return self.principal.membership_id
        if not self._manages_members:
            raise PermissionDenied("members", "write")
        # Another workspace's member id simply matches no row: an empty page, like a random id.
        return member_id

    def _manageable(self) -> ColumnElement[bool]:
        """Tokens the caller may see and revoke: their own, and (owners aside) other members' ones.

        An owner's tokens are an owner's business: an admin who could revoke them could lock every
        owner out, which "only an owner may change an owner" forbids. They answer like a random id.
        """
        if self.principal.role == "owner":
            return self.tokens.everyone()
        return self.tokens.not_an_owners(self.principal.membership_id)

    async def _find(self, token_id: uuid.UUID, *, own_only: bool, lock: bool = False) -> PersonalAccessToken:
        # Someone else's token answers exactly like a token that does not exist.
        visible = PersonalAccessToken.membership_id == self.principal.membership_id if own_only else self._manageable()
        token = await self.tokens.find(token_id, visible=visible, lock="update" if lock else None)
        if token is None:
            raise NotFound(_NOT_FOUND)
        return token


class LeakReportService:
    """Revokes every live token reported as leaked. Anyone may report; nobody learns anything."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, throttle: LoginThrottle) -> None:
        self.sessions = sessions  # login-role sessions: see tenancy/session.py, login_session_factory
        self.settings = settings
        self.throttle = throttle

    async def report(self, tokens: list[str], client_address: str) -> LeakReportReceived:
        # Public and a database write per token: bounded per client address like password logins.
        await self.throttle.admit_policies(
            {f"leak-report:{address_prefix(client_address)}": leak_report_policy()},
            "Too many leak reports from this address; retry after the time in Retry-After.",
        )
        # Junk never reaches the database: only well-formed tenant and admin tokens are looked up.
        pepper = self.settings.token_pepper
        digests = sorted({token_digest(t, pepper) for t in set(tokens) if is_well_formed(t, TENANT_TOKEN_PREFIX)})
        admin_digests = sorted({token_digest(t, pepper) for t in set(tokens) if is_well_formed(t, ADMIN_TOKEN_PREFIX)})
        if digests:
            await self._revoke(digests)
        if admin_digests:
            await self._revoke_admin(admin_digests)
        return LeakReportReceived(received=len(tokens))

    async def _revoke_admin(self, digests: list[bytes]) -> None:
        async with self.sessions() as session:
            uow = UnitOfWork(session)
            async with uow.transaction():
                revoked = await revoke_leaked_admin(session, digests)
                if revoked:
                    await uow.become(self.settings.platform_role, tenant_id=None)
                    for token_id in sorted(revoked):
                        await record_event(
                            session, "admin_token.leak_reported", "admin_token", token_id, workspace_log=False
                        )

    async def _revoke(self, digests: list[bytes]) -> None:
        """One statement, one transaction: the revocations and their audit events commit or fail
        together.

        The function is executable by the app login role only, and writes each workspace's events
        itself (as resolve_token() does for reuse detection): on Citus a workspace's shards that its
        owner role has just changed may not be written by another role in the same transaction, so
        the events cannot come from a later switch to the platform role.
        """
        async with self.sessions() as session:
            uow = UnitOfWork(session)
            async with uow.transaction():
                await revoke_leaked(session, digests, current_request_id.get())
