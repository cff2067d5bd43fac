"""Personal access token wire types. The clear token appears only in `TokenCreated`, once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.auth.permissions import LEVELS, RESOURCES
from tenantry.core.schemas import ShortText

# The hard ceiling; each workspace may set a lower one (max_token_lifetime_days).
MAX_TOKEN_LIFETIME_DAYS = 366
DEFAULT_TOKEN_LIFETIME_DAYS = 90
MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600
MAX_LEAK_REPORT_TOKENS = 100

ExpiresInDays = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_TOKEN_LIFETIME_DAYS,
        description="Lifetime in days: 90 by default (or the workspace maximum if lower), at most the "
        "workspace maximum.",
    ),
]
GracePeriodSeconds = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=MAX_GRACE_PERIOD_SECONDS,
        description="How long the old token keeps working, 0 (stops at once) to 604800 (7 days).",
    ),
]
# Resources and levels are checked by the service against core.permissions, so a new resource
# needs no change here; unknown ones answer 422 naming the key. The document lists them from there too.
Permissions = Annotated[
    dict[str, str],
    msgspec.Meta(
        description="Level per resource: none, read or write. Absent resources get none; an absent map "
        "copies the calling token's current effective permissions.",
        examples=[{"products": "read", "tokens": "write"}],
        extra_json_schema={"propertyNames": {"enum": list(RESOURCES)}, "additionalProperties": {"enum": list(LEVELS)}},
    ),
]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ShortText
    expires_in_days: ExpiresInDays | UnsetType = UNSET
    permissions: Permissions | UnsetType = UNSET


class TokenRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grace_period_seconds: GracePeriodSeconds = 0


class LeakReport(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Tokens found where they should not be. Any strings: junk is ignored, never echoed."""

    tokens: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_LEAK_REPORT_TOKENS)]


class LeakReportReceived(msgspec.Struct, kw_only=True):
    """The same shape whatever was reported, so the answer says nothing about any token."""

    received: int


class TokenOut(msgspec.Struct, kw_only=True):
    """A token as listed: never the secret, never its digest."""

    id: uuid.UUID
    name: str
    display_prefix: str
    last_four: str
    permissions: dict[str, str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None
    replaced_by_id: uuid.UUID | None


class TokenCreated(TokenOut, kw_only=True):
    """The answer to create and rotate: the view plus the clear token, shown this once."""

    # null only in an Idempotency-Key replay: a secret is never stored to be replayed.
    token: str | None
    replayed: bool = False


class TokenFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Whose tokens a list shows (always one member's) and whether revoked ones are included."""

    member_id: uuid.UUID
    include_revoked: bool = False
