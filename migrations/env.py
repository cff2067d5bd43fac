"""Alembic environment.

`tenantry db upgrade` (tenantry.db.migrate) opens the connection, makes sure the roles exist,
switches to the owner role and hands the connection over in `config.attributes["connection"]`,
all inside one transaction that also re-applies the policies. Running `alembic` by hand is not
supported: it would skip the roles and the policies.
"""

from __future__ import annotations

from alembic import context

from tenantry.workspaces.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `tenantry db upgrade`, not with alembic directly")

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
