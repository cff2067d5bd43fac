"""Errors of member management and invitations."""

from __future__ import annotations

from tenantry.core.errors import DomainError


class OwnerRequired(DomainError):
    """The change touches an owner (or makes one): only an active owner may make it.

    Not a PermissionDenied: the token's `members:write` is fine, so naming a missing permission
    would send the caller looking for the wrong fix.
    """

    status = 403
    type = "owner-required"
    title = "Owner required"


class InvitationUnavailable(DomainError):
    """One answer for unknown, expired, revoked and accepted invitation tokens alike."""

    status = 410
    type = "invitation-unavailable"
    title = "Invitation unavailable"

    def __init__(self) -> None:
        super().__init__("This invitation cannot be accepted: it is unknown, expired, revoked or already used.")
