"""Issuing and revoking platform admin tokens (type `tna_`). Used by `tenantry admin token ...`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.auth.tokens import ADMIN_TOKEN_PREFIX, IssuedToken, generate_token
from tenantry.core.db import SET_TRANSACTION_CONTEXT, transaction_context
from tenantry.core.ids import uuid7
from tenantry.settings import Settings

DEFAULT_ADMIN_TOKEN_LIFETIME = timedelta(days=90)


async def issue_admin_token(
    engine: AsyncEngine, settings: Settings, name: str, lifetime: timedelta = DEFAULT_ADMIN_TOKEN_LIFETIME
) -> tuple[IssuedToken, uuid.UUID]:
    issued = generate_token(settings.token_pepper, ADMIN_TOKEN_PREFIX)
    token_id = uuid7()
    async with engine.begin() as connection:
        await connection.execute(SET_TRANSACTION_CONTEXT, transaction_context(settings.platform_role, None))
        await connection.execute(
            text(
                "INSERT INTO public.admin_tokens (id, name, token_digest, display_prefix, last_four, expires_at) "
                "VALUES (:id, :name, :digest, :prefix, :last4, :expires)"
            ),
            {
                "id": token_id,
                "name": name,
                "digest": issued.digest,
                "prefix": issued.display_prefix,
                "last4": issued.last_four,
                "expires": datetime.now(UTC) + lifetime,
            },
        )
    return issued, token_id


async def revoke_admin_token(engine: AsyncEngine, settings: Settings, token_id: uuid.UUID) -> bool:
    async with engine.begin() as connection:
        await connection.execute(SET_TRANSACTION_CONTEXT, transaction_context(settings.platform_role, None))
        result = await connection.execute(
            text("UPDATE public.admin_tokens SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"),
            {"id": token_id},
        )
    return bool(result.rowcount)
