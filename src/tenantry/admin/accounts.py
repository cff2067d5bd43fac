"""Operator accounts for bootstrap: platform admin tokens and user passwords (`tenantry admin ...`).

Both write their audit event in the same transaction as the change, in the platform log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.tokens import ADMIN_TOKEN_PREFIX, generate_token
from tenantry.core.errors import InvalidInput, NotFound
from tenantry.core.ids import uuid7
from tenantry.settings import Settings
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.tokens.models import AdminToken
from tenantry.tokens.repository import AdminTokenRepository
from tenantry.users.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from tenantry.users.repository import UserRepository

MAX_ADMIN_TOKEN_DAYS = 366


@dataclass(frozen=True, slots=True)
class NewAdminToken:
    id: uuid.UUID
    token: str  # the clear token: shown once, never stored
    expires_at: datetime


class AdminTokenService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.settings = settings
        self.tokens = AdminTokenRepository(session)

    async def issue(self, name: str, days: int = 90) -> NewAdminToken:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("The token name must be 1 to 200 characters.")
        if not 1 <= days <= MAX_ADMIN_TOKEN_DAYS:
            raise InvalidInput(f"The lifetime must be 1 to {MAX_ADMIN_TOKEN_DAYS} days.")
        issued = generate_token(self.settings.token_pepper, ADMIN_TOKEN_PREFIX)
        token = AdminToken(
            id=uuid7(),
            name=name,
            token_digest=issued.digest,
            display_prefix=issued.display_prefix,
            last_four=issued.last_four,
            expires_at=datetime.now(UTC) + timedelta(days=days),
        )
        async with self.uow.transaction():
            await self.tokens.add(token, refresh=False)
            await record_event(
                self.session, "admin_token.created", "admin_token", token.id, details={"name": name, "days": days}
            )
        return NewAdminToken(id=token.id, token=issued.token, expires_at=token.expires_at)

    async def revoke(self, token_id: uuid.UUID) -> None:
        async with self.uow.transaction():
            if not await self.tokens.revoke(token_id):
                raise NotFound("No live admin token has this id.")
            await record_event(self.session, "admin_token.revoked", "admin_token", token_id)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at most {MAX_PASSWORD_LENGTH} characters.")
    if "\x00" in password:
        raise InvalidInput("The password must not contain NUL characters.")


class UserPasswordService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.uow = UnitOfWork(session)
        self.users = UserRepository(session)

    async def set_password(self, email: str, password: str) -> uuid.UUID:
        """Set a user's password (argon2id, hashed off the event loop before the transaction)."""
        check_password(password)
        password_hash = await hash_password(password)
        async with self.uow.transaction():
            user = await self.users.find_by_email(email.strip().lower(), lock="update")
            if user is None:
                raise NotFound("No user has this email.")
            user.password_hash = password_hash
            user.updated_at = datetime.now(UTC)
            await self.users.save(user, refresh=False)
            await record_event(self.session, "user.password_set", "user", user.id)
        return user.id
