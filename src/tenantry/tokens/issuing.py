"""The one way a tenant personal access token row is made.

Every path that hands out a PAT (the tokens API, rotation, workspace provisioning, password
login, invitation acceptance) builds its row here, so the stored form (HMAC digest, display
prefix, last four characters) is decided in one place.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tenantry.auth.tokens import IssuedToken, generate_token
from tenantry.core.ids import uuid7
from tenantry.tokens.models import PersonalAccessToken


def new_personal_access_token(
    pepper: str,
    *,
    tenant_id: uuid.UUID,
    membership_id: uuid.UUID,
    name: str,
    permissions: dict[str, str],
    expires_at: datetime | Any,
) -> tuple[PersonalAccessToken, IssuedToken]:
    """A new token and its row, ready for `session.add`. `expires_at` may be a SQL expression."""
    issued = generate_token(pepper)
    row = PersonalAccessToken(
        tenant_id=tenant_id,
        id=uuid7(),
        membership_id=membership_id,
        name=name,
        token_digest=issued.digest,
        display_prefix=issued.display_prefix,
        last_four=issued.last_four,
        permissions=dict(permissions),
        expires_at=expires_at,
    )
    return row, issued
