"""Provisioning: a workspace, its owner, their membership and a first token, in one transaction.

It runs as the app login role like the API does: the platform role writes the global tables, then
the same transaction switches to the tenant role with the new workspace as tenant, so the tenant
rows go through the very RLS policies that guard requests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenantry.auth.tokens import IssuedToken, generate_token
from tenantry.core.db import SET_TRANSACTION_CONTEXT, transaction_context
from tenantry.core.errors import Conflict, NotFound
from tenantry.core.ids import uuid7
from tenantry.core.permissions import role_permissions
from tenantry.settings import Settings

DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
OWNER_ACCESS = role_permissions("owner")


@dataclass(frozen=True)
class ProvisionedWorkspace:
    workspace_id: uuid.UUID
    slug: str
    owner_user_id: uuid.UUID
    owner_membership_id: uuid.UUID
    token: IssuedToken
    token_id: uuid.UUID


class ProvisioningService:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def _as(self, connection: AsyncConnection, role: str, tenant_id: uuid.UUID | None = None) -> None:
        await connection.execute(SET_TRANSACTION_CONTEXT, transaction_context(role, tenant_id))

    async def find_workspace(self, slug: str) -> uuid.UUID | None:
        async with self.engine.begin() as connection:
            await self._as(connection, self.settings.platform_role)
            return (
                await connection.execute(text("SELECT id FROM public.workspaces WHERE slug = :s"), {"s": slug})
            ).scalar_one_or_none()

    async def create_workspace(self, *, slug: str, name: str, owner_email: str) -> ProvisionedWorkspace:
        workspace_id, membership_id = uuid7(), uuid7()
        async with self.engine.begin() as connection:
            await self._as(connection, self.settings.platform_role)
            inserted = await connection.execute(
                text(
                    "INSERT INTO public.workspaces (id, slug, name) VALUES (:id, :slug, :name) "
                    "ON CONFLICT (slug) DO NOTHING RETURNING id"
                ),
                {"id": workspace_id, "slug": slug, "name": name},
            )
            if inserted.first() is None:
                raise Conflict(f"A workspace with slug {slug!r} already exists.")
            user_id = (
                await connection.execute(
                    text(
                        "INSERT INTO public.users (id, email) VALUES (:id, :email) "
                        "ON CONFLICT ((lower(email))) DO UPDATE SET email = public.users.email RETURNING id"
                    ),
                    {"id": uuid7(), "email": owner_email},
                )
            ).scalar_one()
            await self._as(connection, self.settings.tenant_role, workspace_id)
            await connection.execute(
                text(
                    "INSERT INTO public.memberships (tenant_id, id, user_id, role) "
                    "VALUES (:tenant, :id, :user, 'owner')"
                ),
                {"tenant": workspace_id, "id": membership_id, "user": user_id},
            )
            token, token_id = await self._insert_token(
                connection,
                workspace_id,
                membership_id,
                "first owner token",
                OWNER_ACCESS,
                DEFAULT_TOKEN_LIFETIME,
            )
        return ProvisionedWorkspace(workspace_id, slug, user_id, membership_id, token, token_id)

    async def issue_token(
        self,
        workspace_id: uuid.UUID,
        membership_id: uuid.UUID,
        *,
        name: str,
        permissions: dict[str, str] | None = None,
        lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    ) -> tuple[IssuedToken, uuid.UUID]:
        async with self.engine.begin() as connection:
            await self._as(connection, self.settings.tenant_role, workspace_id)
            return await self._insert_token(
                connection, workspace_id, membership_id, name, permissions or OWNER_ACCESS, lifetime
            )

    async def owner_membership(self, workspace_id: uuid.UUID) -> uuid.UUID:
        async with self.engine.begin() as connection:
            await self._as(connection, self.settings.tenant_role, workspace_id)
            membership_id = (
                await connection.execute(
                    text(
                        "SELECT id FROM public.memberships WHERE tenant_id = :t AND role = 'owner' "
                        "AND is_active ORDER BY created_at LIMIT 1"
                    ),
                    {"t": workspace_id},
                )
            ).scalar_one_or_none()
        if membership_id is None:
            raise NotFound("The workspace has no active owner.")
        return membership_id

    async def revoke_token(self, workspace_id: uuid.UUID, token_id: uuid.UUID) -> None:
        async with self.engine.begin() as connection:
            await self._as(connection, self.settings.tenant_role, workspace_id)
            await connection.execute(
                text(
                    "UPDATE public.personal_access_tokens SET revoked_at = now() "
                    "WHERE tenant_id = :t AND id = :id AND revoked_at IS NULL"
                ),
                {"t": workspace_id, "id": token_id},
            )

    async def _insert_token(
        self,
        connection: AsyncConnection,
        workspace_id: uuid.UUID,
        membership_id: uuid.UUID,
        name: str,
        permissions: dict[str, str],
        lifetime: timedelta,
    ) -> tuple[IssuedToken, uuid.UUID]:
        issued = generate_token(self.settings.token_pepper)
        token_id = uuid7()
        await connection.execute(
            text(
                "INSERT INTO public.personal_access_tokens (tenant_id, id, membership_id, name, token_digest, "
                "display_prefix, last_four, permissions, expires_at) VALUES (:tenant, :id, :membership, :name, "
                ":digest, :prefix, :last4, CAST(:permissions AS jsonb), :expires)"
            ),
            {
                "tenant": workspace_id,
                "id": token_id,
                "membership": membership_id,
                "name": name,
                "digest": issued.digest,
                "prefix": issued.display_prefix,
                "last4": issued.last_four,
                "permissions": _json(permissions),
                "expires": datetime.now(UTC) + lifetime,
            },
        )
        return issued, token_id


def _json(value: dict[str, str]) -> str:
    return msgspec.json.encode(value).decode()
