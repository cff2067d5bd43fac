"""A provisioned workspace and the clear token of its owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenantry.workspaces.bootstrap import ProvisionedWorkspace, ProvisioningService


@dataclass
class Tenant:
    """A provisioned workspace and the clear token of its owner."""

    workspace: ProvisionedWorkspace

    @property
    def id(self) -> uuid.UUID:
        return self.workspace.workspace_id

    @property
    def token(self) -> str:
        return self.workspace.token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_tenant(provisioning: ProvisioningService, label: str = "ws") -> Tenant:
    """A fresh workspace (unique slug) with an owner, as `tenantry admin workspace create` makes one."""
    slug = f"{label}-{uuid.uuid4().hex[:12]}"
    created = await provisioning.create_workspace(
        slug=slug, name=f"Workspace {label}", owner_email=f"owner-{slug}@example.com"
    )
    return Tenant(created)
