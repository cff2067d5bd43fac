"""Resolve a token digest to a principal, through the narrow SECURITY DEFINER lookups.

These run on their own short connection, before the request has a tenant; they never touch the
request's session (whose transaction must begin only once the tenant is known).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.core.context import AdminPrincipal, Principal

_RESOLVE = text(
    "SELECT token_id, tenant_id, user_id, membership_id, member_role, permissions, expired, revoked, "
    "member_active, workspace_status, max_token_lifetime_days FROM public.resolve_token(:digest)"
)
_RESOLVE_ADMIN = text("SELECT token_id, name, valid FROM public.resolve_admin_token(:digest)")


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the directory says of a digest: a principal, or why there is none."""

    principal: Principal | None
    workspace_status: str | None = None


INVALID = Resolution(principal=None)


async def resolve_token(engine: AsyncEngine, digest: bytes, fingerprint: str = "") -> Resolution:
    async with engine.begin() as connection:  # begin: the resolver stamps last_used_at
        row = (await connection.execute(_RESOLVE, {"digest": digest})).first()
    if row is None or row.expired or row.revoked or not row.member_active:
        return INVALID
    if row.workspace_status != "active":
        return Resolution(principal=None, workspace_status=row.workspace_status)
    permissions = row.permissions if isinstance(row.permissions, dict) else json.loads(row.permissions)
    return Resolution(
        principal=Principal(
            token_id=row.token_id,
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            membership_id=row.membership_id,
            role=row.member_role,
            token_permissions=permissions,
            token_fingerprint=fingerprint,
            max_token_lifetime_days=row.max_token_lifetime_days,
        ),
        workspace_status="active",
    )


async def resolve_admin_token(engine: AsyncEngine, digest: bytes, fingerprint: str) -> AdminPrincipal | None:
    async with engine.begin() as connection:
        row = (await connection.execute(_RESOLVE_ADMIN, {"digest": digest})).first()
    if row is None or not row.valid:
        return None
    return AdminPrincipal(token_id=row.token_id, name=row.name, token_fingerprint=fingerprint)
