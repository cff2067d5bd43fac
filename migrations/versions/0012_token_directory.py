"""The token directory: which workspace a token digest belongs to, read before the tenant is known.

`resolve_token()` used to find a token by its digest alone. On Citus `personal_access_tokens` is
distributed by tenant_id, so that query went to every shard on each token-cache miss. The
directory maps each digest to its workspace; the resolver reads it, then the token with its
tenant: one shard (docs/scale-out.md, "The token lookup before the tenant is known"). On plain
PostgreSQL it is one more index lookup in the same function.

A global table (no tenant_id: it is not a workspace's data, never exported), written with each
token in the same transaction (TokenRepository.add). On Citus `db upgrade` keeps it on the
coordinator (db/citus.py, COORDINATOR_LOCAL) rather than making it a reference table, so a new
token costs one local row, not a two-phase write to every node. Policies: policies/token_directory.sql.

No foreign key to `workspaces`: on a cluster where `workspaces` is already a reference table, Citus
would turn the new table into a Citus local table on the spot, in the middle of the upgrade's
transaction, and the policy DDL that follows then deadlocks with it (seen on Citus 13.2). Nothing
deletes a workspace row (a purged workspace stays as a tombstone); the purge deletes the
workspace's entries (workspaces/purge.py), and an entry can only be added for the workspace set
on the transaction (the insert policy).

Existing tokens are backfilled here (the migration runs as the owner role, which reads every
token through the resolver's policy).

Revision ID: 0012_token_directory
Revises: 0011_citus_role_switch
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_token_directory"
down_revision: str | None = "0011_citus_role_switch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_directory",
        sa.Column("token_digest", sa.LargeBinary(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("token_digest", name="pk_token_directory"),
    )
    op.create_index("ix_token_directory_workspace_id", "token_directory", ["workspace_id"])
    op.execute(
        "INSERT INTO public.token_directory (token_digest, workspace_id) "
        "SELECT t.token_digest, t.tenant_id FROM public.personal_access_tokens AS t"
    )


def downgrade() -> None:
    op.drop_table("token_directory")
