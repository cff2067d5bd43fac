"""Wire types of the platform admin surface. Request bodies reject unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.core.plans import LimitValues, PlanLimits
from tenantry.core.schemas import END, NAME_PATTERN, DisplayName, Email, ShortText

Slug = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?" + END,
        description="Lower-case letters, digits and inner hyphens; unique platform-wide.",
        examples=["acme"],
    ),
]
ExternalId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="Your own id for this workspace (e.g. a billing customer); unique platform-wide.",
    ),
]
Metadata = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description="A JSON object of your own, at most 16 KiB once encoded, with no NUL character (U+0000) "
        "in any key or string (PostgreSQL's jsonb cannot store one)."
    ),
]
TokenLifetimeDays = Annotated[int, msgspec.Meta(ge=1, le=366, description="Longest lifetime of a token, in days.")]
PurgeAfterDays = Annotated[int, msgspec.Meta(ge=1, le=365, description="Days until the purge; default 30.")]
WORKSPACE_STATUS_PATTERN = r"^(active|suspended|pending_deletion|purged)" + END


class WorkspaceCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: ShortText
    owner_email: Email
    owner_display_name: DisplayName = ""
    external_id: ExternalId | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class WorkspaceUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change; `external_id: null` clears it."""

    name: ShortText | UnsetType = UNSET
    external_id: ExternalId | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET
    max_token_lifetime_days: TokenLifetimeDays | UnsetType = UNSET


class ScheduleDeletion(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    purge_after_days: PurgeAfterDays = 30


class PurgeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Purging before `purge_after` needs the workspace's slug typed out, as a deliberate act."""

    confirm_slug: Slug | None = None


class WorkspaceOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    status: str
    external_id: str | None
    metadata: dict[str, Any]
    max_token_lifetime_days: int
    created_at: datetime
    updated_at: datetime
    suspended_at: datetime | None
    purge_after: datetime | None
    purged_at: datetime | None
    purge_report: dict[str, int] | None = None


class OwnerOut(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    membership_id: uuid.UUID
    email: str
    user_created: bool


class WorkspaceCreated(msgspec.Struct, kw_only=True):
    """The answer to a creation. `owner_token` is the clear token, in the first response only.

    A replay (same `Idempotency-Key`, same body) answers with `replayed: true` and
    `owner_token: null`: the clear token is never stored, so it cannot be shown twice.
    """

    workspace: WorkspaceOut
    owner: OwnerOut
    owner_token_id: uuid.UUID
    owner_token_expires_at: datetime
    owner_token: str | None
    replayed: bool = False


class PurgeReportOut(msgspec.Struct, kw_only=True):
    workspace: WorkspaceOut
    deleted: dict[str, int]


class MemberUsage(msgspec.Struct, kw_only=True):
    total: int
    active: int


class TokenUsage(msgspec.Struct, kw_only=True):
    total: int
    active: int


class UsageOut(msgspec.Struct, kw_only=True):
    workspace_id: uuid.UUID
    members: MemberUsage
    tokens: TokenUsage
    rows: dict[str, int]


class ExportTable(msgspec.Struct, kw_only=True):
    name: str
    rows: int
    href: str


class ExportManifest(msgspec.Struct, kw_only=True):
    """What an export contains: one JSON Lines stream per tenant table."""

    workspace: WorkspaceOut
    format: str
    exported_at: datetime
    tables: list[ExportTable]


class WorkspaceFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What the admin list of workspaces is narrowed to; part of the cursor's binding."""

    status: str | None = None


PlanRequests = Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="Requests per window.")]
PlanWindow = Annotated[int, msgspec.Meta(ge=1, le=3600, description="The window, in seconds.")]
PlanConcurrency = Annotated[int, msgspec.Meta(ge=1, le=10_000, description="Requests in flight at once.")]


class PlanUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change; `null` returns that limit to the default.

    `*_requests` per `*_window_s` seconds is a bucket that refills evenly over the window;
    `*_concurrency` caps the requests in flight. `workspace_*` counts every token of the
    workspace together, `token_*` each token on its own.
    """

    workspace_requests: PlanRequests | UnsetType | None = UNSET
    workspace_window_s: PlanWindow | UnsetType | None = UNSET
    workspace_concurrency: PlanConcurrency | UnsetType | None = UNSET
    token_requests: PlanRequests | UnsetType | None = UNSET
    token_window_s: PlanWindow | UnsetType | None = UNSET
    token_concurrency: PlanConcurrency | UnsetType | None = UNSET


class PlanOut(msgspec.Struct, kw_only=True):
    """A workspace's plan: its own limits (`null`: the default) and the limits in force."""

    workspace_id: uuid.UUID
    plan: PlanLimits
    effective: LimitValues
    updated_at: datetime | None
