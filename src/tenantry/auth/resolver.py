"""Resolve a token digest to a principal, through the narrow SECURITY DEFINER lookup.

This runs on its own short connection, before the request has a tenant; it never touches the
request's session (whose transaction must begin only once the tenant is known).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.core.context import Principal

_RESOLVE = text(
    "SELECT token_id, tenant_id, user_id, membership_id, member_role, permissions, "
    "expired, revoked, member_active, workspace_status FROM public.resolve_token(:digest)"
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the directory says of a digest: a principal, or why there is none."""

    principal: Principal | None
    suspended: bool = False


INVALID = Resolution(principal=None)


async def resolve_token(engine: AsyncEngine, digest: bytes) -> Resolution:
    async with engine.connect() as connection:
        row = (await connection.execute(_RESOLVE, {"digest": digest})).first()
        await connection.rollback()
    if row is None or row.expired or row.revoked or not row.member_active:
        return INVALID
    if row.workspace_status != "active":
        return Resolution(principal=None, suspended=True)
    permissions = row.permissions if isinstance(row.permissions, dict) else json.loads(row.permissions)
    return Resolution(
        principal=Principal(
            token_id=row.token_id,
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            membership_id=row.membership_id,
            role=row.member_role,
            token_permissions=permissions,
        )
    )
