"""Every table of the schema in one metadata, and the tenant tables discovered from it.

This module imports every domain's models, so `metadata` describes the whole schema: Alembic
compares against it, and the workspace lifecycle reads the tenant tables from it.

A table is a tenant table when it has a `tenant_id` column. Purge, export and usage all read this
one list, so a table added by a later migration is purged and exported without touching this
package (its policy file must grant the platform role SELECT and DELETE, as products.sql does).
"""

from __future__ import annotations

from sqlalchemy import Column, Table

from tenantry.auditlog.models import AuditEvent, PlatformAuditEvent
from tenantry.catalog.models import Product
from tenantry.db.base import Base
from tenantry.http.idempotency_store import AdminIdempotencyKey, IdempotencyKey
from tenantry.lookups.models import Lookup
from tenantry.members.models import Invitation, Membership
from tenantry.orders.models import Order, OrderStatusHistory, OrderTag
from tenantry.tokens.models import AdminToken, PersonalAccessToken, TokenDirectoryEntry
from tenantry.users.models import AuthThrottle, User
from tenantry.workspaces.models import Workspace, WorkspacePlan

metadata = Base.metadata

# Secrets are never exported: HMAC digests of tokens (and, defensively, any password hash).
_SECRET_SUFFIXES = ("digest", "password_hash")
# Internal caches are never exported (docs/07-admin-guide.md, "Exporting a workspace"): stored
# answers to retried requests are the service's business, not the workspace's data. They are
# purged and counted in usage like any tenant table.
INTERNAL_TABLES = frozenset({"idempotency_keys"})


def tenant_tables() -> list[Table]:
    """Tenant tables, parents before children (the order of `metadata.sorted_tables`)."""
    return [table for table in metadata.sorted_tables if "tenant_id" in table.c]


def tenant_tables_children_first() -> list[Table]:
    """The order a purge deletes in: rows that reference others go before the rows they reference."""
    return list(reversed(tenant_tables()))


def tenant_table(name: str) -> Table | None:
    return next((table for table in tenant_tables() if table.name == name), None)


def exported_tables() -> list[Table]:
    """The tenant tables an export holds, parents before children: all but the internal caches."""
    return [table for table in tenant_tables() if table.name not in INTERNAL_TABLES]


def exported_table(name: str) -> Table | None:
    return next((table for table in exported_tables() if table.name == name), None)


def is_secret(column: Column[object]) -> bool:
    return column.name.endswith(_SECRET_SUFFIXES)


def exportable_columns(table: Table) -> list[Column[object]]:
    return [column for column in table.columns if not is_secret(column)]


# The models above are imported for their tables in `metadata`, and re-exported for Alembic.
__all__ = [
    "INTERNAL_TABLES",
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
    "TokenDirectoryEntry",
    "User",
    "Workspace",
    "WorkspacePlan",
    "exportable_columns",
    "exported_table",
    "exported_tables",
    "is_secret",
    "metadata",
    "tenant_table",
    "tenant_tables",
    "tenant_tables_children_first",
]
