"""One transaction as this session's role and the current tenant (docs/03-architecture.md).

Every service method that touches the database runs its work inside `UnitOfWork.transaction()`:

- it begins the session's transaction, so the session hook (tenancy/session.py) sets role, tenant,
  user and statement timeout before any statement of the work;
- it commits explicitly when the block ends, inside the service method: a failed commit is an
  exception there, and becomes an error answer, never a 2xx;
- it turns a unique violation (23505) into `Conflict` and a foreign-key violation (23503) into
  `NotFound`, with the message the service chooses for each (`unique=`, `foreign_key=`), so no
  service catches `IntegrityError` itself.

One exception to "commits when the block ends": a session may carry a *commit owner*
(`COMMIT_OWNER_KEY` in its `info`), set by the idempotency layer for a request sent with an
Idempotency-Key. Then the first unit leaves its transaction open for the owner, which stores the
answer in the same transaction and commits both at once (http/idempotency.py); later units of the
same request run as savepoints inside it. The owner is told when the transaction begins, so it can
lock what it will store before the work runs.

The rare transaction that changes roles half-way (invitation acceptance: tenant, platform, tenant;
the leak report: the login role, then the platform role) says so with `become`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.core.errors import CommitOutcomeUnknown, Conflict, DomainError, NotFound
from tenantry.core.sqlstate import FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate_of
from tenantry.tenancy.session import DEFAULT_STATEMENT_TIMEOUT_MS, STATEMENT_TIMEOUT_KEY, set_transaction_context

COMMIT_OWNER_KEY = "tenantry_commit_owner"

# The same answers the problem layer gives a violation nobody named (docs/05-api-guide.md, Errors).
DEFAULT_UNIQUE = Conflict("The request conflicts with an existing resource.")
DEFAULT_FOREIGN_KEY = NotFound("The resource was not found.")


class CommitOwner(Protocol):
    """Who commits a session's transaction instead of its units of work (the idempotency layer)."""

    async def began(self, session: AsyncSession) -> None:
        """The transaction has begun (the tenant is set); called before the work's first statement."""


COMMIT_LOST = (
    "The connection to the database was lost while the change was being committed: it may or may not"
    " have been saved. Retry with the same Idempotency-Key, or read before writing again."
)


def _outcome_unknown(exc: BaseException) -> bool:
    """A COMMIT that failed without the server saying so: it may have committed all the same."""
    if isinstance(exc, DBAPIError):
        code = sqlstate_of(exc)
        return exc.connection_invalidated or code is None or code[:2] in ("08", "57")
    return isinstance(exc, (OSError, TimeoutError))


async def commit(session: AsyncSession) -> None:
    """Commit the session's transaction; a lost connection during COMMIT is `CommitOutcomeUnknown`.

    The server may have committed before the connection dropped, so the answer must not claim
    that nothing was written (docs/06-operations.md, failure modes). A COMMIT the server refused
    (a deferred constraint, a serialization failure) is raised as it is.
    """
    try:
        await session.commit()
    except Exception as exc:
        if _outcome_unknown(exc):
            raise CommitOutcomeUnknown(COMMIT_LOST) from exc
        raise


class UnitOfWork:
    """Transactions of one session: begin, commit (or hand over), and violations as domain errors."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @asynccontextmanager
    async def transaction(
        self, *, unique: DomainError | None = None, foreign_key: DomainError | None = None
    ) -> AsyncIterator[AsyncSession]:
        """Run the block as one transaction; raise `unique` / `foreign_key` for those violations."""
        try:
            owner: CommitOwner | None = self.session.info.get(COMMIT_OWNER_KEY)
            if owner is None:
                await self.session.begin()
                try:
                    yield self.session
                    await self.session.flush()  # violations surface here, before COMMIT is sent
                except BaseException:
                    await self.session.rollback()
                    raise
                await commit(self.session)
            elif self.session.in_transaction():
                # A later unit of a request whose answer commits with its work: a savepoint, so a
                # failure here undoes this unit only, as its own transaction would have.
                async with self.session.begin_nested():
                    yield self.session
            else:
                await self.session.begin()
                try:
                    await owner.began(self.session)
                    yield self.session
                    await self.session.flush()  # violations surface here, inside the service
                except BaseException:
                    await self.session.rollback()
                    raise
        except IntegrityError as exc:
            code = sqlstate_of(exc)
            if code == UNIQUE_VIOLATION:
                raise copy.copy(unique or DEFAULT_UNIQUE) from None
            if code == FOREIGN_KEY_VIOLATION:
                raise copy.copy(foreign_key or DEFAULT_FOREIGN_KEY) from None
            raise

    async def become(self, role: str, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None) -> None:
        """Switch the open transaction to `role` and `tenant_id` (SET LOCAL ROLE and the tenant).

        Only for the few operations that must cross roles within one transaction; the switch
        lasts until the next switch or the end of the transaction.
        """
        if not self.session.in_transaction():
            raise RuntimeError("become() needs an open transaction")
        await set_transaction_context(
            self.session,
            role=role,
            tenant_id=tenant_id,
            user_id=user_id,
            statement_timeout_ms=self.session.info.get(STATEMENT_TIMEOUT_KEY, DEFAULT_STATEMENT_TIMEOUT_MS),
            switched=True,
        )
