"""The tenant tables, discovered from the models rather than listed by hand.

A table is a tenant table when it has a `tenant_id` column. Purge, export and usage all read this
one list, so a table added by a later migration is purged and exported without touching this
package (its policy file must grant the platform role SELECT and DELETE, as products.sql does).
"""

from __future__ import annotations

from sqlalchemy import Column, Table

from tenantry.db.models import metadata

# Secrets are never exported: HMAC digests of tokens (and, defensively, any password hash).
_SECRET_SUFFIXES = ("digest", "password_hash")


def tenant_tables() -> list[Table]:
    """Tenant tables, parents before children (the order of `metadata.sorted_tables`)."""
    return [table for table in metadata.sorted_tables if "tenant_id" in table.c]


def tenant_tables_children_first() -> list[Table]:
    """The order a purge deletes in: rows that reference others go before the rows they reference."""
    return list(reversed(tenant_tables()))


def tenant_table(name: str) -> Table | None:
    return next((table for table in tenant_tables() if table.name == name), None)


def is_secret(column: Column[object]) -> bool:
    return column.name.endswith(_SECRET_SUFFIXES)


def exportable_columns(table: Table) -> list[Column[object]]:
    return [column for column in table.columns if not is_secret(column)]
