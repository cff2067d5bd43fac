"""Errors of password login. One answer for every wrong credential, so none can be told apart."""

from __future__ import annotations

from tenantry.core.errors import DomainError

INVALID_CREDENTIALS = "The email, password or workspace is not valid."


class InvalidCredentials(DomainError):
    """Unknown email, wrong or missing password, not an active member, unknown workspace: all alike."""

    status = 401
    type = "invalid-credentials"
    title = "Invalid credentials"

    def __init__(self) -> None:
        super().__init__(INVALID_CREDENTIALS)
