"""Data access for personal access tokens (tenant) and platform admin tokens (global)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, or_, select, text, true, update

from tenantry.members.models import Membership
from tenantry.tenancy.auth_changes import announce_auth_change
from tenantry.tenancy.repository import Lock, Repository, TenantRepository
from tenantry.tokens.models import AdminToken, PersonalAccessToken, TokenDirectoryEntry
from tenantry.tokens.schemas import TokenFilters

# Each digest goes through the SECURITY DEFINER function, which revokes a live token, logs it in
# its workspace's audit log and says which workspace it belonged to: one statement for a whole
# leak report. The functions are executable by the app login role only.
_REVOKE_LEAKED = text(
    "SELECT r.tenant_id, r.token_id "
    "FROM unnest(CAST(:digests AS bytea[])) AS d(digest) "
    "CROSS JOIN LATERAL public.revoke_leaked_token(d.digest, CAST(:request_id AS text)) AS r"
)
_REVOKE_LEAKED_ADMIN = text(
    "SELECT r.token_id FROM unnest(CAST(:digests AS bytea[])) AS d(digest) "
    "CROSS JOIN LATERAL public.revoke_leaked_admin_token(d.digest) AS r"
)


class TokenRepository(TenantRepository[PersonalAccessToken]):
    model = PersonalAccessToken
    resource = "tokens"

    def not_an_owners(self, membership_id: uuid.UUID) -> ColumnElement[bool]:
        """Tokens of `membership_id`, or of any member who is not an owner of this workspace."""
        owners = self.scoped(select(Membership.id), Membership).where(Membership.role == "owner")
        return or_(
            PersonalAccessToken.membership_id == membership_id,
            PersonalAccessToken.membership_id.not_in(owners),
        )

    async def add(self, row: PersonalAccessToken, *, refresh: bool = True) -> PersonalAccessToken:
        """Insert the token and its directory entry, in the caller's transaction: every path that
        creates a token (the tokens API, rotation, provisioning, login, invitation acceptance, the
        operator commands) comes through here, so no token exists that resolve_token() cannot find
        (policies/10_auth_functions.sql looks the workspace up in the directory first).

        A plain INSERT, no RETURNING: the tenant role may add its workspace's entries, never read one.
        """
        await self.session.execute(
            insert(TokenDirectoryEntry).values(token_digest=row.token_digest, workspace_id=self.tenant_id)
        )
        return await super().add(row, refresh=refresh)

    @staticmethod
    def everyone() -> ColumnElement[bool]:
        return true()

    async def find(
        self, token_id: uuid.UUID, *, visible: ColumnElement[bool], lock: Lock | None = None
    ) -> PersonalAccessToken | None:
        """The token, if `visible` holds for it (what the caller may see)."""
        return await self.get(token_id, lock=lock, where=(visible,))

    def of_member(self, filters: TokenFilters, *, visible: ColumnElement[bool]) -> Select[Any]:
        query = self.select().where(PersonalAccessToken.membership_id == filters.member_id, visible)
        if not filters.include_revoked:
            query = query.where(PersonalAccessToken.revoked_at.is_(None))
        return query

    async def now(self) -> datetime:
        """The database's clock, which the resolver compares expiry against."""
        return (await self.session.execute(select(func.now()))).scalar_one()

    async def counts(self) -> tuple[int, int]:
        """(all tokens, live tokens: neither revoked nor expired)."""
        live = PersonalAccessToken.revoked_at.is_(None) & (PersonalAccessToken.expires_at > func.now())
        row = (await self.session.execute(self.select(func.count(), func.count().filter(live)))).one()
        return int(row[0]), int(row[1])

    async def revoke(self, token_id: uuid.UUID, at: datetime) -> None:
        """Revoke a live token (a no-op for one already revoked)."""
        await self.session.execute(
            update(PersonalAccessToken)
            .where(self.tenant_filter(), PersonalAccessToken.id == token_id, PersonalAccessToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        # A Core UPDATE: the session's flush hook does not see it, so it is announced here.
        await announce_auth_change(self.session, self.tenant_id)

    async def forget_directory_entries(self) -> int:
        """Delete the workspace's token directory entries (the purge: its tokens are gone)."""
        result = await self.session.execute(
            delete(TokenDirectoryEntry).where(TokenDirectoryEntry.workspace_id == self.tenant_id)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class AdminTokenRepository(Repository[AdminToken]):
    model = AdminToken
    resource = "admin-tokens"

    async def revoke(self, token_id: uuid.UUID) -> bool:
        """Revoke a live admin token; False if there is none with this id."""
        result = await self.session.execute(
            update(AdminToken)
            .where(AdminToken.id == token_id, AdminToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_leaked(
    session: Any, digests: list[bytes], request_id: str | None
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Revoke every live tenant token among `digests`, each with its `token.leak_reported` audit
    event (tagged with `request_id`): (workspace, token) of each one revoked.

    Runs as the app login role (the function is granted to it only), with no role switch.
    """
    rows = await session.execute(_REVOKE_LEAKED, {"digests": digests, "request_id": request_id})
    return [(row[0], row[1]) for row in rows]


async def revoke_leaked_admin(session: Any, digests: list[bytes]) -> list[uuid.UUID]:
    """Revoke every live admin token among `digests`; their ids. As the app login role, like above."""
    return list((await session.execute(_REVOKE_LEAKED_ADMIN, {"digests": digests})).scalars().all())
