"""docs/security.md, contract rule 5, from the live catalog: every foreign key between tenant tables is composite with
tenant_id and has an index led by exactly its columns (else each delete of a referenced row, and
each usage count, scans the referencing table)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text, c.conname, c.confrelid::regclass::text,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) AS k(attnum)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attname = 'tenant_id')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attname = 'tenant_id')
ORDER BY 1, 2
"""

# The key columns of every index in order (expressions are left out), and its predicate if partial.
_INDEXES = """
SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n),
       pg_get_expr(i.indpred, i.indrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = 'public'::regnamespace
"""


def _serves(columns: list[str], index_columns: list[str], predicate: str | None) -> bool:
    """Led by exactly the key's columns; a partial index only if it leaves out just rows whose key is NULL,
    which no referenced-row lookup ever asks for."""
    if set(index_columns[: len(columns)]) != set(columns):
        return False
    return predicate is None or predicate in {f"({column} IS NOT NULL)" for column in columns}


async def test_every_tenant_foreign_key_is_composite_and_indexed(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as connection:
        foreign_keys = (await connection.execute(text(_FOREIGN_KEYS))).all()
        indexes = (await connection.execute(text(_INDEXES))).all()
    # The business tables are among them, or this would prove nothing about them.
    names = {name for _, name, _, _ in foreign_keys}
    assert {
        "fk_products_tenant_id_category_id_lookups",
        "fk_orders_tenant_id_product_id_products",
        "fk_order_status_history_tenant_id_order_id_orders",
        "fk_order_tags_tenant_id_order_id_orders",
        "fk_order_tags_tenant_id_lookup_id_lookups",
    } <= names
    for table, name, _referenced, columns in foreign_keys:
        assert "tenant_id" in columns, (table, name)
        supported = any(
            index_table == table and _serves(columns, index_columns, predicate)
            for index_table, _, index_columns, predicate in indexes
        )
        assert supported, f"{table}.{name} ({', '.join(columns)}) has no index led by its columns"
