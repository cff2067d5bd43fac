"""Password login wire types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from tenantry.core.schemas import ShortText
from tenantry.users.passwords import MAX_PASSWORD_LENGTH

DEFAULT_LOGIN_LIFETIME_SECONDS = 8 * 3600
MIN_LOGIN_LIFETIME_SECONDS = 60
MAX_LOGIN_LIFETIME_SECONDS = 24 * 3600

# Deliberately loose: a stricter shape would answer 422 for some addresses and 401 for others,
# and an address that matches no account must look exactly like a wrong password.
LoginEmail = Annotated[str, msgspec.Meta(min_length=1, max_length=320, examples=["ada@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
WorkspaceSlug = Annotated[str, msgspec.Meta(min_length=1, max_length=63, examples=["acme"])]
LoginLifetime = Annotated[
    int,
    msgspec.Meta(
        ge=MIN_LOGIN_LIFETIME_SECONDS,
        le=MAX_LOGIN_LIFETIME_SECONDS,
        description="Token lifetime in seconds, 60 to 86400; 28800 (8 hours) by default.",
    ),
]


class PasswordLogin(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Exchange email + password for a short-lived token of one workspace."""

    email: LoginEmail
    password: Password
    workspace: WorkspaceSlug
    name: ShortText = "password login"
    expires_in_seconds: LoginLifetime = DEFAULT_LOGIN_LIFETIME_SECONDS


class IssuedTokenOut(msgspec.Struct, kw_only=True):
    """A new personal access token: the clear `token` is shown this once and never again."""

    token: str
    token_id: uuid.UUID
    expires_at: datetime
    permissions: dict[str, str]
