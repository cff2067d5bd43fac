"""Provisioning outside a request: the dev server's demo workspace and the tests' workspaces.

It runs the same code as the admin API (workspaces/provisioning.py) on platform-role sessions from the
app login role, with the new workspace as the tenant scope, so the tenant rows go through the very
RLS policies that guard requests and the creation is audited like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tenantry.auth.permissions import role_permissions
from tenantry.auth.tokens import IssuedToken
from tenantry.core.errors import NotFound
from tenantry.core.ids import uuid7
from tenantry.members.repository import MembershipRepository
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.session import platform_session_factory
from tenantry.tenancy.unit_of_work import UnitOfWork
from tenantry.tokens.issuing import new_personal_access_token
from tenantry.tokens.repository import TokenRepository
from tenantry.workspaces.provisioning import provision_workspace
from tenantry.workspaces.repository import WorkspaceRepository
from tenantry.workspaces.schemas import WorkspaceCreate

DEFAULT_TOKEN_LIFETIME = timedelta(days=90)


@dataclass(frozen=True)
class ProvisionedWorkspace:
    workspace_id: uuid.UUID
    slug: str
    owner_user_id: uuid.UUID
    owner_membership_id: uuid.UUID
    token: str  # the owner's first token, in clear
    token_id: uuid.UUID


class ProvisioningService:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.sessions = platform_session_factory(engine, settings)
        self.settings = settings

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A platform session of its own, in one unit of work."""
        async with self.sessions() as session, UnitOfWork(session).transaction():
            yield session

    async def find_workspace(self, slug: str) -> uuid.UUID | None:
        async with self._transaction() as session:
            return await WorkspaceRepository(session).id_of_slug(slug)

    async def create_workspace(self, *, slug: str, name: str, owner_email: str) -> ProvisionedWorkspace:
        workspace_id = uuid7()
        with tenant_scope(workspace_id):
            async with self._transaction() as session:
                created = await provision_workspace(
                    session,
                    self.settings,
                    workspace_id,
                    WorkspaceCreate(slug=slug, name=name, owner_email=owner_email),
                )
        return ProvisionedWorkspace(
            workspace_id=workspace_id,
            slug=slug,
            owner_user_id=created.owner.user_id,
            owner_membership_id=created.owner.membership_id,
            token=created.owner_token or "",
            token_id=created.owner_token_id,
        )

    async def issue_token(
        self,
        workspace_id: uuid.UUID,
        membership_id: uuid.UUID,
        *,
        name: str,
        permissions: dict[str, str] | None = None,
        lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    ) -> tuple[IssuedToken, uuid.UUID]:
        with tenant_scope(workspace_id):
            async with self._transaction() as session:
                row, issued = new_personal_access_token(
                    self.settings.token_pepper,
                    tenant_id=workspace_id,
                    membership_id=membership_id,
                    name=name,
                    permissions=permissions or role_permissions("owner"),
                    expires_at=datetime.now(UTC) + lifetime,
                )
                await TokenRepository(session, workspace_id).add(row, refresh=False)
        return issued, row.id

    async def owner_membership(self, workspace_id: uuid.UUID) -> uuid.UUID:
        with tenant_scope(workspace_id):
            async with self._transaction() as session:
                membership_id = await MembershipRepository(session, workspace_id).first_active_owner()
        if membership_id is None:
            raise NotFound("The workspace has no active owner.")
        return membership_id

    async def revoke_token(self, workspace_id: uuid.UUID, token_id: uuid.UUID) -> None:
        with tenant_scope(workspace_id):
            async with self._transaction() as session:
                await TokenRepository(session, workspace_id).revoke(token_id, datetime.now(UTC))
