"""Rules on keys: unique keys lead with tenant_id (K1), tenant foreign keys carry it (K2), and
every foreign key has an index to check it with (K3)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import TENANT_COLUMN, Catalog, ForeignKey, Index, quote_ident
from tenantry.tools.catalog_audit.findings import Issue, rule


def _kind(index: Index) -> str:
    if index.primary:
        return "primary key"
    if index.exclusion:
        return "exclusion constraint"
    return "unique constraint" if index.constraint else "unique index"


@rule("K1", "high", "unique key of a tenant table does not start with tenant_id")
def unique_keys_lead_with_tenant(catalog: Catalog) -> Iterator[Issue]:
    """Unique checks ignore row-level security: a key without the tenant lets workspace A learn
    that B has a value (its insert fails with a conflict) and blocks A from using it. Leading with
    tenant_id scopes the key to one workspace and is what Citus needs to enforce it on one shard.
    Covers primary keys, unique constraints, unique indexes (partial and expression ones too) and
    exclusion constraints."""
    for index in catalog.indexes:
        table = catalog.tables.get(index.table_oid)
        if table is None or not table.is_tenant or not (index.unique or index.primary or index.exclusion):
            continue
        if index.keys[:1] != (table.tenant_attnum,):
            yield Issue(
                f"{_kind(index)} {index.constraint or index.name} on {table.name}",
                f"{index.definition} does not start with {TENANT_COLUMN}",
                f"recreate it with {TENANT_COLUMN} as the first column, "
                f"e.g. ({TENANT_COLUMN}, {', '.join(table.column_names(index.keys))})",
            )


def _tenant_matched(fk: ForeignKey) -> bool:
    return any(
        column == TENANT_COLUMN and ref == TENANT_COLUMN
        for column, ref in zip(fk.column_names, fk.ref_column_names, strict=True)
    )


@rule("K2", "critical", "foreign key between tenant tables without tenant_id on both sides")
def tenant_foreign_keys(catalog: Catalog) -> Iterator[Issue]:
    """Foreign-key checks ignore row-level security: a key on the id alone lets workspace A point
    its row at workspace B's. The key must be composite, with tenant_id matched to tenant_id:
    (tenant_id, x_id) REFERENCES x (tenant_id, id)."""
    for fk in catalog.foreign_keys:
        source = catalog.tables.get(fk.table_oid)
        target = catalog.tables.get(fk.ref_table_oid)
        if source is None or target is None or not (source.is_tenant and target.is_tenant):
            continue
        if not _tenant_matched(fk):
            yield Issue(
                f"foreign key {fk.name} on {source.name}",
                f"({', '.join(fk.column_names)}) REFERENCES {target.name} ({', '.join(fk.ref_column_names)}) "
                f"does not pair {TENANT_COLUMN} with {TENANT_COLUMN}",
                f"ALTER TABLE {source.name} DROP CONSTRAINT {quote_ident(fk.name)}; recreate it as "
                f"({TENANT_COLUMN}, ...) REFERENCES {target.name} ({TENANT_COLUMN}, ...)",
            )


_NOT_NULL = re.compile(r"^\(?([a-z_][a-z0-9_$]*|\"(?:[^\"]|\"\")+\") IS NOT NULL\)?$")


def not_null_columns(predicate: str) -> set[str] | None:
    """The columns of a predicate made only of `col IS NOT NULL` conjuncts; None for any other."""
    body = predicate.strip()
    while body.startswith("((") and body.endswith("))"):
        body = body[1:-1]
    columns = set()
    for part in body.split(" AND "):
        match = _NOT_NULL.match(part.strip())
        if not match:
            return None
        columns.add(match.group(1).strip('"'))
    return columns


def _supports(index: Index, fk: ForeignKey) -> bool:
    """Leading key columns equal to the foreign key's (any order), valid, and usable by its checks.

    A partial index on `col IS NOT NULL` of the key's own columns still serves the lookups, which
    compare those columns with `=` and so imply the predicate.
    """
    if not index.valid or index.table_oid != fk.table_oid:
        return False
    width = len(fk.columns)
    if len(index.keys) < width or set(index.keys[:width]) != set(fk.columns):
        return False
    if index.predicate is None:
        return True
    columns = not_null_columns(index.predicate)
    return columns is not None and columns <= set(fk.column_names)


@rule("K3", "medium", "foreign key without a supporting index")
def foreign_key_indexes(catalog: Catalog) -> Iterator[Issue]:
    """Deleting or re-keying a referenced row looks up the referencing rows by the foreign-key
    columns; without an index that starts with them, each such statement scans the whole
    referencing table while holding locks, which any tenant can trigger. Applies to every foreign
    key in the app schema, tenant or global."""
    for fk in catalog.foreign_keys:
        if any(_supports(index, fk) for index in catalog.indexes):
            continue
        table = catalog.tables[fk.table_oid]
        yield Issue(
            f"foreign key {fk.name} on {table.name}",
            f"no valid index on {table.name} starts with ({', '.join(fk.column_names)})",
            f"CREATE INDEX ON {table.name} ({', '.join(quote_ident(c) for c in fk.column_names)});",
        )


RULES = (unique_keys_lead_with_tenant, tenant_foreign_keys, foreign_key_indexes)
