"""Member and invitation wire types. Unknown fields (tenant_id among them) are rejected."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from tenantry.core.schemas import DisplayName, Email
from tenantry.users.schemas import IssuedTokenOut

DEFAULT_INVITATION_DAYS = 7
MAX_INVITATION_DAYS = 30

Role = Literal["owner", "admin", "member", "viewer"]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]
InvitationDays = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_INVITATION_DAYS,
        description="How long the invitation can be accepted, 1 to 30 days; 7 by default.",
    ),
]


class MemberOut(msgspec.Struct, kw_only=True):
    """A member: the membership id, the email, the role and the per-workspace profile.

    Never the global user id: users are platform-wide, and a tenant has no business with them.
    """

    id: uuid.UUID
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH body: only the fields present change."""

    role: Role | UnsetType = UNSET
    display_name: DisplayName | UnsetType = UNSET


class ProfileUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What every member may change about themselves."""

    display_name: DisplayName


class InvitationCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    role: Role
    expires_in_days: InvitationDays = DEFAULT_INVITATION_DAYS


class InvitationOut(msgspec.Struct, kw_only=True):
    """An invitation; `status` is 'expired' for a pending one past `expires_at`. Never the token."""

    id: uuid.UUID
    email: str
    role: str
    status: str
    invited_by_member_id: uuid.UUID | None
    accepted_member_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InvitationCreated(InvitationOut, kw_only=True):
    """The answer to create: the invitation plus its clear token, shown this once."""

    # null only in an Idempotency-Key replay: a secret is never stored to be replayed.
    token: str | None
    replayed: bool = False


class InvitationAccept(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Accept an invitation: the token and, optionally, the display name in this workspace.

    No password: the invitation token proves only that its holder received the invitation (the
    inviter holds it too), so accepting never reads, sets or checks an account's password.
    """

    token: Annotated[str, msgspec.Meta(max_length=200)]
    display_name: DisplayName = ""


class AcceptedInvitation(msgspec.Struct, kw_only=True):
    """The new membership and a first token for it (shown this once)."""

    member: MemberOut
    token: IssuedTokenOut


class MemberFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of members is narrowed to; every field is part of the cursor's binding."""

    role: str | None = None
    is_active: bool | None = None


class InvitationFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of invitations is narrowed to; every field is part of the cursor's binding."""

    status: str | None = None
