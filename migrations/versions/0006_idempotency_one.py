"""One shape for both idempotency tables: admin keys store the exact answer, like tenant keys.

The admin table kept a decoded JSON body and no headers; the one idempotency layer
(http/idempotency.py) stores the answer's exact bytes, its replayed headers and an expiry for both
kinds of key. Existing admin answers (all of them workspace creations) are carried over: the body
as the UTF-8 text of its JSON, the headers as the creation's Content-Type and Location.

Revision ID: 0006_idempotency_one
Revises: 0005_list_indexes
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_idempotency_one"
down_revision: str | None = "0005_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("admin_idempotency_keys", sa.Column("response_headers", postgresql.JSONB(), nullable=True))
    op.add_column("admin_idempotency_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE public.admin_idempotency_keys SET expires_at = created_at + interval '24 hours', "
        "response_headers = CASE WHEN response_status IS NOT NULL THEN jsonb_build_object("
        "'content-type', 'application/json', "
        "'location', '/admin/v1/workspaces/' || (response_body -> 'workspace' ->> 'id')) END"
    )
    op.alter_column("admin_idempotency_keys", "expires_at", nullable=False)
    op.alter_column(
        "admin_idempotency_keys",
        "response_body",
        type_=sa.LargeBinary(),
        postgresql_using="convert_to(response_body::text, 'UTF8')",
    )


def downgrade() -> None:
    op.alter_column(
        "admin_idempotency_keys",
        "response_body",
        type_=postgresql.JSONB(),
        postgresql_using="convert_from(response_body, 'UTF8')::jsonb",
    )
    op.drop_column("admin_idempotency_keys", "expires_at")
    op.drop_column("admin_idempotency_keys", "response_headers")
