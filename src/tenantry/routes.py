"""Every controller the API serves, in one list (the prober and the OpenAPI document read it too)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from tenantry.admin.controller import AdminAuditController, AdminWorkspaceController
from tenantry.auditlog.controller import AuditEventController
from tenantry.auth.controller import WhoAmIController
from tenantry.catalog.controller import ProductController
from tenantry.lookups.controller import LookupController
from tenantry.members.controller import InvitationController, MemberController
from tenantry.orders.controller import OrderController
from tenantry.tokens.controller import TokenController
from tenantry.users.controller import AuthController

ROUTES: list[ControllerRouterHandler] = [
    ProductController,
    LookupController,
    OrderController,
    MemberController,
    InvitationController,
    TokenController,
    AuditEventController,
    AuthController,
    WhoAmIController,
    AdminWorkspaceController,
    AdminAuditController,
]
