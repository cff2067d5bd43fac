"""Resolve a token digest to a principal, through the narrow SECURITY DEFINER lookups.

These run on their own short connection, before the request has a tenant; they never touch the
request's session (whose transaction must begin only once the tenant is known).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.principal import AdminPrincipal, Principal
from tenantry.core.plans import PLAN_FIELDS, PlanLimits

# The workspace's plan comes in the same statement (policies/workspace_plans.sql), so the
# limits travel with the principal and its cache, and enforcing them costs no query of its own.
_RESOLVE = text(
    "SELECT r.token_id, r.tenant_id, r.user_id, r.membership_id, r.member_role, r.permissions, r.expired, "
    "r.revoked, r.member_active, r.workspace_status, r.max_token_lifetime_days, r.expires_in_s, "
    + ", ".join(f"p.{name}" for name in PLAN_FIELDS)
    + " FROM public.resolve_token(:digest) AS r LEFT JOIN LATERAL public.workspace_plan(r.tenant_id) AS p ON true"
)
_RESOLVE_ADMIN = text("SELECT token_id, name, valid FROM public.resolve_admin_token(:digest)")


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the directory says of a digest: a principal, or why there is none."""

    principal: Principal | None
    workspace_status: str | None = None
    # The token's workspace, also when it is refused (a refusal may mean its tokens just changed).
    tenant_id: uuid.UUID | None = None
    # Seconds the token has left by the database's clock (the API's clock is never consulted).
    expires_in_s: float | None = None


INVALID = Resolution(principal=None)


async def _one_row(engine: AsyncEngine, statement: TextClause, digest: bytes) -> Row[Any] | None:
    # One statement in autocommit: its own implicit transaction covers the last_used_at stamp and
    # reuse detection, without a BEGIN and a COMMIT round trip around it.
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return (await autocommit.execute(statement, {"digest": digest})).first()


async def resolve_token(engine: AsyncEngine, digest: bytes, fingerprint: str = "") -> Resolution:
    row = await _one_row(engine, _RESOLVE, digest)
    if row is None:
        return INVALID
    if row.expired or row.revoked or not row.member_active:
        return Resolution(principal=None, tenant_id=row.tenant_id)
    if row.workspace_status != "active":
        return Resolution(principal=None, workspace_status=row.workspace_status, tenant_id=row.tenant_id)
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
            plan=_plan(row),
        ),
        workspace_status="active",
        tenant_id=row.tenant_id,
        expires_in_s=row.expires_in_s,
    )


def _plan(row: Row[Any]) -> PlanLimits | None:
    values = {name: getattr(row, name) for name in PLAN_FIELDS}
    return PlanLimits(**values) if any(v is not None for v in values.values()) else None


async def resolve_admin_token(engine: AsyncEngine, digest: bytes, fingerprint: str) -> AdminPrincipal | None:
    row = await _one_row(engine, _RESOLVE_ADMIN, digest)
    if row is None or not row.valid:
        return None
    return AdminPrincipal(token_id=row.token_id, name=row.name, token_fingerprint=fingerprint)
