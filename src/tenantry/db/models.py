"""Imports every domain's models so `metadata` describes the whole schema (for Alembic's compare)."""

from tenantry.admin.models import AdminIdempotencyKey
from tenantry.audit.models import AuditEvent, PlatformAuditEvent
from tenantry.catalog.models import Product
from tenantry.core.idempotency_store import IdempotencyKey
from tenantry.db.base import Base
from tenantry.lookups.models import Lookup
from tenantry.members.models import Invitation, Membership
from tenantry.orders.models import Order, OrderStatusHistory, OrderTag
from tenantry.tokens.models import AdminToken, PersonalAccessToken
from tenantry.users.models import AuthThrottle, User
from tenantry.workspaces.models import Workspace

metadata = Base.metadata

__all__ = [
    "AdminIdempotencyKey",
    "AdminToken",
    "AuditEvent",
    "AuthThrottle",
    "IdempotencyKey",
    "Invitation",
    "Lookup",
    "Membership",
    "Order",
    "OrderStatusHistory",
    "OrderTag",
    "PersonalAccessToken",
    "PlatformAuditEvent",
    "Product",
    "User",
    "Workspace",
    "metadata",
]
