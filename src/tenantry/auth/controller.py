"""GET /v1/whoami: what the presented token is, straight from the verified principal.

It reads nothing beyond what authentication already resolved, so it is also the cheapest
authenticated request there is (the benchmark compares it with an unauthenticated one).
"""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller
from litestar.connection import ASGIConnection

from tenantry.auth.guards import requires_tenant_token, tenant_principal
from tenantry.auth.handlers import get
from tenantry.auth.permissions import RESOURCES


class WhoAmI(msgspec.Struct, kw_only=True):
    """The token's workspace, its member (by membership id) and what it may do.

    Never the global user id: users are platform-wide, and a tenant has no business with them
    (docs/04-security-model.md, "What tenants see of global data").
    """

    workspace_id: uuid.UUID
    member_id: uuid.UUID
    """The membership id, the one `/v1/members/{id}` and audit events use."""
    token_id: uuid.UUID
    role: str
    permissions: dict[str, str]
    """What the token may do on each resource now: the lower of its grant and the member's role."""


class WhoAmIController(Controller):
    path = "/v1/whoami"
    tags = ["Tokens"]

    @get("/", operation_id="whoAmI", guards=[requires_tenant_token])
    async def whoami(self, request: ASGIConnection) -> WhoAmI:  # type: ignore[type-arg]
        """The workspace, member and effective permissions of the token that made this request."""
        principal = tenant_principal(request)
        return WhoAmI(
            workspace_id=principal.tenant_id,
            member_id=principal.membership_id,
            token_id=principal.token_id,
            role=principal.role,
            permissions={resource: principal.level(resource) for resource in RESOURCES},
        )
