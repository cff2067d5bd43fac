"""The one place a bearer token is verified.

Parse and checksum first (junk never reaches the database), then HMAC, then the resolver. The
principal is kept in a contextvar for this request only and reset in `finally`.
"""

from __future__ import annotations

import re

from litestar.datastructures import Headers
from litestar.types import ASGIApp, Receive, Scope, Send

from tenantry.auth.resolver import resolve_token
from tenantry.auth.tokens import is_well_formed, token_digest
from tenantry.core.context import Principal, current_principal
from tenantry.core.errors import Unauthenticated, WorkspaceSuspended

# Anchored: "/health/live" is public, "/v1/x/health" is not.
PUBLIC_PATHS = re.compile(r"^/(?:health/(?:live|ready)|schema(?:/.*)?|docs)$")
_BEARER = re.compile(r"^Bearer ([^\s]+)$", re.IGNORECASE)


class AuthenticationMiddleware:
    """Turns `Authorization: Bearer tnt_...` into the request's `Principal`, or refuses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or PUBLIC_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        principal = await self.authenticate(scope)
        scope["user"] = principal
        scope["auth"] = principal.token_id
        reset_token = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(reset_token)

    @staticmethod
    async def authenticate(scope: Scope) -> Principal:
        header = Headers.from_scope(scope).get("authorization")
        match = _BEARER.match(header) if header else None
        token = match.group(1) if match else ""
        # Every failure below raises the same error, so unknown, revoked, expired, tampered and
        # malformed tokens are indistinguishable to the caller.
        if not is_well_formed(token):
            raise Unauthenticated("A valid bearer token is required.")
        state = scope["app"].state
        resolution = await resolve_token(state.engine, token_digest(token, state.settings.token_pepper))
        if resolution.suspended:
            raise WorkspaceSuspended("This workspace is suspended.")
        if resolution.principal is None:
            raise Unauthenticated("A valid bearer token is required.")
        return resolution.principal
