"""Data access for the global users table (platform role only; no tenant filter applies)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, text, update

from tenantry.core.ids import uuid7
from tenantry.tenancy.repository import AnyRow, Lock, Repository, with_lock
from tenantry.users.models import User

# Insert a password-less account unless one has the email; either way the same statements run.
_INSERT_IF_ABSENT = text(
    "INSERT INTO public.users (id, email, password_hash) VALUES (:id, :email, NULL) "
    "ON CONFLICT ((lower(email))) DO NOTHING"
)
# The account with this email, created if new; says which (for the platform log only).
_UPSERT = text(
    "INSERT INTO public.users (id, email) VALUES (:id, :email) "
    "ON CONFLICT ((lower(email))) DO UPDATE SET email = public.users.email "
    "RETURNING id, email, (xmax = 0) AS created"
)


class UserRepository(Repository[User]):
    model = User
    resource = "users"

    async def find_by_email(self, email_lower: str, *, lock: Lock | None = None) -> User | None:
        """The account whose lower-cased email is `email_lower`."""
        query = with_lock(self.select().where(func.lower(User.email) == email_lower), lock)
        return await self.scalar(query)  # type: ignore[no-any-return]

    async def credentials(self, email_lower: str) -> AnyRow | None:
        """(id, password_hash) of the account with this lower-cased email, for password login."""
        return await self.first(self.select(User.id, User.password_hash).where(func.lower(User.email) == email_lower))

    async def ensure(self, email: str) -> uuid.UUID | None:
        """The id of the account with this email, created without a password if there is none.

        An existing account is only looked up, never written. The lookup runs after the insert, so
        it also finds an account that a concurrent transaction created and committed meanwhile;
        None if that account was deleted between the two statements.
        """
        await self.session.execute(_INSERT_IF_ABSENT, {"id": uuid7(), "email": email})
        return await self.scalar(self.select(User.id).where(func.lower(User.email) == func.lower(email)))  # type: ignore[no-any-return]

    async def upsert(self, email: str) -> AnyRow:
        """(id, email, created) of the account with this email, created if new."""
        return (await self.session.execute(_UPSERT, {"id": uuid7(), "email": email})).one()

    async def rehash(self, user_id: uuid.UUID, old_hash: str | None, new_hash: str) -> None:
        """Store a stronger hash of the same password, unless the password changed meanwhile."""
        await self.session.execute(
            update(User)
            .where(User.id == user_id, User.password_hash == old_hash)
            .values(password_hash=new_hash, updated_at=func.now())
        )
