"""Creating a workspace with its owner: the admin service (HTTP and CLI) and bootstrap (tests, dev).

It works on a platform session inside the caller's unit of work, takes external_id, metadata and
the owner's display name, and audits in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auditlog.recorder import record_event
from tenantry.auth.permissions import role_permissions
from tenantry.core.errors import Conflict, InvalidInput
from tenantry.core.ids import uuid7
from tenantry.members.models import Membership
from tenantry.members.repository import MembershipRepository
from tenantry.settings import Settings
from tenantry.tokens.issuing import new_personal_access_token
from tenantry.tokens.repository import TokenRepository
from tenantry.users.repository import UserRepository
from tenantry.workspaces.models import Workspace
from tenantry.workspaces.repository import WorkspaceRepository
from tenantry.workspaces.schemas import OwnerOut, WorkspaceCreate, WorkspaceCreated, WorkspaceOut

MAX_METADATA_BYTES = 16 * 1024
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
OWNER_TOKEN_NAME = "first owner token"  # noqa: S105 - a display name, not a secret
TAKEN = "A workspace with this {} already exists."


def workspace_out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        id=workspace.id,
        slug=workspace.slug,
        name=workspace.name,
        status=workspace.status,
        external_id=workspace.external_id,
        metadata=dict(workspace.metadata_ or {}),
        max_token_lifetime_days=workspace.max_token_lifetime_days,
        created_at=workspace.created_at,
        updated_at=workspace.updated_at,
        suspended_at=workspace.suspended_at,
        purge_after=workspace.purge_after,
        purged_at=workspace.purged_at,
        purge_report=workspace.purge_report,
    )


def check_metadata(metadata: dict[str, object]) -> None:
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInput(
            "The body does not match the schema.",
            errors=[{"field": "metadata", "message": f"Expected at most {MAX_METADATA_BYTES} bytes of JSON"}],
        )
    if b"\\u0000" in encoded:  # PostgreSQL's jsonb cannot hold NUL in a string
        raise InvalidInput(
            "The body does not match the schema.",
            errors=[{"field": "metadata", "message": "NUL characters are not allowed"}],
        )


async def provision_workspace(
    session: AsyncSession, settings: Settings, workspace_id: uuid.UUID, data: WorkspaceCreate
) -> WorkspaceCreated:
    """Workspace, owner user (created if new), owner membership, first token and the audit event.

    Runs in the caller's transaction, begun inside `tenant_scope(workspace_id)`: the tenant rows
    go through the same tenant policy as any request of the new workspace.
    """
    workspaces = WorkspaceRepository(session)
    existing = await workspaces.taken(data.slug, data.external_id)
    if existing is not None:
        raise Conflict(TAKEN.format("slug" if existing == data.slug else "external_id"))
    workspace = await workspaces.add(
        Workspace(
            id=workspace_id,
            slug=data.slug,
            name=data.name,
            external_id=data.external_id,
            metadata_=data.metadata,
        )
    )
    user = await UserRepository(session).upsert(data.owner_email)
    membership = await MembershipRepository(session, workspace_id).add(
        Membership(id=uuid7(), user_id=user.id, role="owner", display_name=data.owner_display_name), refresh=False
    )
    lifetime = min(DEFAULT_TOKEN_LIFETIME, timedelta(days=workspace.max_token_lifetime_days))
    token, issued = new_personal_access_token(
        settings.token_pepper,
        tenant_id=workspace_id,
        membership_id=membership.id,
        name=OWNER_TOKEN_NAME,
        permissions=role_permissions("owner"),
        expires_at=datetime.now(UTC) + lifetime,
    )
    await TokenRepository(session, workspace_id).add(token, refresh=False)
    await record_event(
        session,
        "workspace.created",
        "workspace",
        workspace_id,
        tenant_id=workspace_id,
        details={"slug": data.slug, "owner_membership_id": str(membership.id), "owner_token_id": str(token.id)},
        platform_details={"owner_user_id": str(user.id), "user_created": bool(user.created)},
    )
    return WorkspaceCreated(
        workspace=workspace_out(workspace),
        owner=OwnerOut(user_id=user.id, membership_id=membership.id, email=user.email, user_created=user.created),
        owner_token_id=token.id,
        owner_token_expires_at=token.expires_at,
        owner_token=issued.token,
    )
