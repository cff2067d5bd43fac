"""The one place a bearer token is verified.

Parse and checksum first (junk never reaches the database), then HMAC, then the resolver. Paths
under /admin/ take platform admin tokens only; every other non-public path takes tenant tokens
only, so neither kind can ever act as the other. The principal (and, for tenants, the tenant
scope of every transaction) lives in contextvars for this request only and is reset in `finally`.
"""

from __future__ import annotations

import re
from contextvars import ContextVar, Token
from typing import Any

from litestar.datastructures import Headers
from litestar.types import ASGIApp, Receive, Scope, Send

from tenantry.auth.resolver import resolve_admin_token, resolve_token
from tenantry.auth.tokens import (
    ADMIN_TOKEN_PREFIX,
    TENANT_TOKEN_PREFIX,
    is_well_formed,
    token_digest,
    token_fingerprint,
)
from tenantry.core.context import (
    AdminPrincipal,
    Principal,
    TenantScope,
    current_admin,
    current_principal,
    current_scope,
)
from tenantry.core.errors import Unauthenticated, WorkspaceUnavailable

# Anchored, whole-path matches: "/health/live" is public, "/v1/x/health/live" is not.
PUBLIC_PATHS = re.compile(
    r"^/(?:health/(?:live|ready)|schema(?:/.*)?|v1/auth/token|v1/tokens/leak-report|v1/invitations/accept)$"
)
ADMIN_PATHS = re.compile(r"^/admin/")
_BEARER = re.compile(r"^Bearer ([^\s]+)$", re.IGNORECASE)
_REFUSED = "A valid bearer token is required."


def _bearer(scope: Scope) -> str:
    header = Headers.from_scope(scope).get("authorization")
    match = _BEARER.match(header) if header else None
    return match.group(1) if match else ""


class AuthenticationMiddleware:
    """Turns `Authorization: Bearer ...` into the request's principal, or refuses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or PUBLIC_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        resets: list[tuple[ContextVar[Any], Token[Any]]] = []
        if ADMIN_PATHS.match(scope["path"]):
            admin = await self.authenticate_admin(scope)
            scope["user"] = admin
            resets.append((current_admin, current_admin.set(admin)))
        else:
            principal = await self.authenticate(scope)
            scope["user"] = principal
            resets.append((current_principal, current_principal.set(principal)))
            resets.append((current_scope, current_scope.set(TenantScope(principal.tenant_id, principal.user_id))))
        try:
            await self.app(scope, receive, send)
        finally:
            for variable, reset in reversed(resets):
                variable.reset(reset)

    @staticmethod
    async def authenticate(scope: Scope) -> Principal:
        token = _bearer(scope)
        # Every failure below raises the same error, so unknown, revoked, expired, tampered,
        # malformed and wrong-type tokens are indistinguishable to the caller.
        if not is_well_formed(token, TENANT_TOKEN_PREFIX):
            raise Unauthenticated(_REFUSED)
        state = scope["app"].state
        resolution = await resolve_token(
            state.engine, token_digest(token, state.settings.token_pepper), token_fingerprint(token)
        )
        if resolution.principal is None:
            if resolution.workspace_status in ("suspended", "pending_deletion"):
                raise WorkspaceUnavailable(resolution.workspace_status)
            raise Unauthenticated(_REFUSED)
        return resolution.principal

    @staticmethod
    async def authenticate_admin(scope: Scope) -> AdminPrincipal:
        token = _bearer(scope)
        if not is_well_formed(token, ADMIN_TOKEN_PREFIX):
            raise Unauthenticated(_REFUSED)
        state = scope["app"].state
        admin = await resolve_admin_token(
            state.engine, token_digest(token, state.settings.token_pepper), token_fingerprint(token)
        )
        if admin is None:
            raise Unauthenticated(_REFUSED)
        return admin
