"""Provisioning outside a request: the dev server's demo workspace and the tests' workspaces.

It runs the same code as the admin API (workspaces/provisioning.py) on platform-role sessions from the
app login role, with the new workspace as the tenant scope, so the tenant rows go through the very
RLS policies that guard requests and the creation is audited like any other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.permissions import role_permissions
from tenantry.auth.tokens import IssuedToken
from tenantry.core.errors import NotFound
from tenantry.core.ids import uuid7
from tenantry.members.models import Membership
from tenantry.settings import Settings
from tenantry.tenancy.context import tenant_scope
from tenantry.tenancy.session import platform_session_factory
from tenantry.tokens.issuing import new_personal_access_token
from tenantry.tokens.models import PersonalAccessToken
from tenantry.workspaces.models import Workspace
from tenantry.workspaces.provisioning import provision_workspace
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

    async def find_workspace(self, slug: str) -> uuid.UUID | None:
        async with self.sessions() as session, session.begin():
            return (await session.execute(select(Workspace.id).where(Workspace.slug == slug))).scalar_one_or_none()

    async def create_workspace(self, *, slug: str, name: str, owner_email: str) -> ProvisionedWorkspace:
        workspace_id = uuid7()
        with tenant_scope(workspace_id):
            async with self.sessions() as session, session.begin():
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
            async with self.sessions() as session, session.begin():
                row, issued = new_personal_access_token(
                    self.settings.token_pepper,
                    tenant_id=workspace_id,
                    membership_id=membership_id,
                    name=name,
                    permissions=permissions or role_permissions("owner"),
                    expires_at=datetime.now(UTC) + lifetime,
                )
                session.add(row)
        return issued, row.id

    async def owner_membership(self, workspace_id: uuid.UUID) -> uuid.UUID:
        with tenant_scope(workspace_id):
            async with self.sessions() as session, session.begin():
                membership_id = (
                    await session.execute(
                        select(Membership.id)
                        .where(Membership.tenant_id == workspace_id, Membership.role == "owner", Membership.is_active)
                        .order_by(Membership.created_at)
                        .limit(1)
                    )
                ).scalar_one_or_none()
        if membership_id is None:
            raise NotFound("The workspace has no active owner.")
        return membership_id

    async def revoke_token(self, workspace_id: uuid.UUID, token_id: uuid.UUID) -> None:
        with tenant_scope(workspace_id):
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(PersonalAccessToken)
                    .where(
                        PersonalAccessToken.tenant_id == workspace_id,
                        PersonalAccessToken.id == token_id,
                        PersonalAccessToken.revoked_at.is_(None),
                    )
                    .values(revoked_at=datetime.now(UTC))
                )
