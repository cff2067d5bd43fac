"""Writing audit events: one call, which reads the actor from the request context.

Tenant actions go to the workspace's own log. Admin actions go to the platform log and, when they
concern a workspace, to that workspace's log too (the caller runs inside `tenant_scope()` for it,
so the row passes the same RLS check as any other).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.models import AuditEvent, PlatformAuditEvent
from tenantry.auth.principal import AdminPrincipal, Principal, current_admin, current_principal
from tenantry.core.ids import uuid7
from tenantry.http.requestlog import current_request_id
from tenantry.tenancy.unit_of_work import TenantStatements


def _fingerprint(principal: Principal | None, admin: AdminPrincipal | None) -> str | None:
    caller = principal or admin
    return (caller.token_fingerprint or None) if caller else None


async def record_event(
    session: AsyncSession,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
    platform_details: dict[str, Any] | None = None,
    workspace_log: bool = True,
) -> None:
    """Add an audit event to the session's current transaction (it commits or rolls back with it).

    `workspace_log=False` keeps an admin event out of the workspace's own log; the purge uses it,
    since that log is among what it has just deleted. `platform_details` go to the platform log
    only: global facts (user ids, whether an account already existed) that a tenant must not see.
    """
    principal, admin = current_principal.get(), current_admin.get()
    request_id = current_request_id.get()
    target = str(target_id) if target_id is not None else None
    if admin is not None or not workspace_log:
        session.add(
            PlatformAuditEvent(
                id=uuid7(),
                actor=admin.name if admin else "system",
                admin_token_id=admin.token_id if admin else None,
                token_fingerprint=(admin.token_fingerprint or None) if admin else None,
                request_id=request_id,
                action=action,
                workspace_id=tenant_id,
                details={
                    "target_type": target_type,
                    "target_id": target,
                    **(details or {}),
                    **(platform_details or {}),
                },
            )
        )
    tenant = principal.tenant_id if principal is not None else tenant_id
    if tenant is None or not workspace_log:
        return
    session.add(
        AuditEvent(**_workspace_event(tenant, principal, admin, request_id, action, target_type, target, details))
    )


def _workspace_event(
    tenant: uuid.UUID,
    principal: Principal | None,
    admin: AdminPrincipal | None,
    request_id: str | None,
    action: str,
    target_type: str,
    target: str | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "id": uuid7(),
        "actor_type": "member" if principal else ("admin" if admin else "anonymous"),
        "actor_member_id": principal.membership_id if principal else None,
        "actor_admin_token_id": admin.token_id if admin else None,
        "token_fingerprint": _fingerprint(principal, admin),
        "request_id": request_id,
        "action": action,
        "target_type": target_type,
        "target_id": target,
        "details": details or {},
    }


_COLUMNS = (
    "tenant_id",
    "id",
    "actor_type",
    "actor_member_id",
    "actor_admin_token_id",
    "token_fingerprint",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "details",
)
# The workspace event's INSERT, built once (`record_tenant_event`; the bench's baseline runs it too).
INSERT_EVENT = insert(cast("Table", AuditEvent.__table__)).values({name: bindparam(name) for name in _COLUMNS})


async def record_tenant_event(
    statements: TenantStatements, action: str, target_type: str, target_id: uuid.UUID | str | None = None
) -> None:
    """`record_event` for a tenant caller's action in a `tenant_writes` transaction (no session):
    the same row in the workspace's log, as one Core INSERT that commits or rolls back with it."""
    principal = current_principal.get()
    if principal is None:
        raise RuntimeError("record_tenant_event needs the request's tenant principal")
    target = str(target_id) if target_id is not None else None
    event = _workspace_event(
        principal.tenant_id, principal, None, current_request_id.get(), action, target_type, target, None
    )
    await statements.execute(INSERT_EVENT, event)
