"""The one place a bearer token is verified.

Parse and checksum first (junk never reaches the database), then HMAC, then the principal cache
(auth/cache.py), then the resolver. Paths under /admin/ take platform admin tokens only; every
other non-public path takes tenant tokens only, so neither kind can ever act as the other. The
principal (and, for tenants, the tenant scope of every transaction) lives in contextvars for this
request only and is reset in `finally`.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from tenantry.auth.cache import PrincipalCache
from tenantry.auth.principal import AdminPrincipal, Principal, current_admin, current_principal
from tenantry.auth.resolver import resolve_admin_token, resolve_token
from tenantry.auth.tokens import (
    ADMIN_TOKEN_PREFIX,
    TENANT_TOKEN_PREFIX,
    TOKEN_LENGTH,
    is_well_formed,
    token_digest,
    token_fingerprint,
)
from tenantry.core.errors import DomainError, Unauthenticated, WorkspaceUnavailable
from tenantry.tenancy.context import TenantScope, current_scope

# Anchored, whole-path matches: "/health/live" is public, "/v1/x/health/live" is not.
PUBLIC_PATHS = re.compile(
    r"^/(?:health/(?:live|ready)|schema(?:/.*)?|v1/auth/token|v1/tokens/leak-report|v1/invitations/accept)$"
)
ADMIN_PATHS = re.compile(r"^/admin/")
# Tenant routes whose writes can change what a token resolves to (revocation, rotation, a member's
# role or activity). After such a write this process forgets the workspace's cached principals
# before answering; other processes learn it from PostgreSQL's notification.
AUTH_CHANGING_TENANT_PATHS = re.compile(r"^/v1/(?:tokens|members|invitations)(?:/|$)")
LEAK_REPORT_PATH = "/v1/tokens/leak-report"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BEARER = re.compile(r"^Bearer ([^\s]+)$", re.IGNORECASE)
_REFUSED = "A valid bearer token is required."


class AmbiguousAuthorization(DomainError):
    """Several `Authorization` headers: which one counts would depend on their order."""

    status = 400
    type = "bad-request"
    title = "Bad request"


def _bearer(scope: Scope) -> str:
    # The raw header list, not a parsed Headers object: this runs on every request.
    headers = [value.decode("latin-1") for name, value in scope["headers"] if name.lower() == b"authorization"]
    if len(headers) > 1:
        # Taking the first (or last) would let header order pick the workspace; a proxy that adds
        # its own header must not silently win or lose. docs/05-api-guide.md, Authentication.
        raise AmbiguousAuthorization(
            "Send one Authorization header, not several.",
            errors=[{"field": "Authorization", "message": "is sent more than once"}],
        )
    match = _BEARER.match(headers[0]) if headers else None
    return match.group(1) if match else ""


class AuthenticationMiddleware:
    """Turns `Authorization: Bearer ...` into the request's principal, or refuses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if PUBLIC_PATHS.match(path):
            # A leak report revokes tokens of any workspace: forget everything after one. (Signing
            # in and accepting an invitation only add tokens, which nothing has cached.)
            if path == LEAK_REPORT_PATH:
                send = self._forgetting(scope, send, None)
            await self.app(scope, receive, send)
            return
        resets: list[tuple[ContextVar[Any], Token[Any]]] = []
        if ADMIN_PATHS.match(path):
            admin = await self.authenticate_admin(scope)
            scope["user"] = admin
            resets.append((current_admin, current_admin.set(admin)))
            send = self._forgetting(scope, send, None)
        else:
            principal = await self.authenticate(scope)
            scope["user"] = principal
            resets.append((current_principal, current_principal.set(principal)))
            resets.append((current_scope, current_scope.set(TenantScope(principal.tenant_id, principal.user_id))))
            if AUTH_CHANGING_TENANT_PATHS.match(path):
                send = self._forgetting(scope, send, principal.tenant_id)
        try:
            await self.app(scope, receive, send)
        finally:
            for variable, reset in reversed(resets):
                variable.reset(reset)

    @staticmethod
    def _forgetting(scope: HTTPScope, send: Send, tenant_id: uuid.UUID | None) -> Send:
        """`send`, made to drop cached principals (one workspace's, or all) before a write's answer."""
        cache: PrincipalCache | None = scope["app"].state.get("principal_cache")
        if cache is None or scope["method"] in SAFE_METHODS:
            return send

        async def forget_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if tenant_id is None:
                    cache.clear()
                else:
                    cache.evict_tenant(tenant_id)
            await send(message)

        return forget_then_send

    @staticmethod
    async def authenticate(scope: Scope) -> Principal:
        token = _bearer(scope)
        # Every failure below raises the same error, so unknown, revoked, expired, tampered,
        # malformed and wrong-type tokens are indistinguishable to the caller.
        if len(token) != TOKEN_LENGTH:  # bounds the hashing below; the full check comes before the database
            raise Unauthenticated(_REFUSED)
        state = scope["app"].state
        digest = token_digest(token, state.settings.token_pepper)
        cache: PrincipalCache | None = state.get("principal_cache")
        ticket = 0
        if cache is not None:
            # Only a token that passed the full check below and the database was ever cached, under
            # its keyed digest: a hit is that same token, so checking its form again is redundant.
            if (cached := cache.get(digest)) is not None:
                return cached
            ticket = cache.ticket()
        if not is_well_formed(token, TENANT_TOKEN_PREFIX):
            raise Unauthenticated(_REFUSED)
        resolution = await resolve_token(state.engine, digest, token_fingerprint(token))
        if cache is not None:
            if resolution.principal is not None and resolution.expires_in_s is not None:
                cache.put(digest, resolution.principal, resolution.expires_in_s, ticket)
            elif resolution.tenant_id is not None:
                # A refused token of a known workspace: presenting a rotated token after its grace
                # has just revoked its family (reuse detection), so forget the workspace here now.
                cache.evict_tenant(resolution.tenant_id)
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
