"""/v1/tokens: the caller's personal access tokens, and the public leak report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.guards import requires_permission, tenant_principal
from tenantry.auth.handlers import delete, get, post
from tenantry.core.schemas import Page
from tenantry.http.querying import Cursor, Limit
from tenantry.tenancy.pagination import PageRequest
from tenantry.tokens.schemas import (
    LeakReport,
    LeakReportReceived,
    TokenCreate,
    TokenCreated,
    TokenOut,
    TokenRotate,
)
from tenantry.tokens.service import LeakReportService, TokenService
from tenantry.users.throttle import LoginThrottle


def provide_token_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> TokenService:
    return TokenService(db_session, tenant_principal(request), state.cursor_key, state.settings.token_pepper)


def provide_leak_report_service(state: State) -> LeakReportService:
    return LeakReportService(state.login_session_factory, state.settings, LoginThrottle(state.platform_session_factory))


IncludeRevoked = Annotated[bool, Parameter(description="Also return revoked tokens.")]
MemberId = Annotated[
    uuid.UUID | None,
    Parameter(description="List this member's tokens instead of your own (needs members:write)."),
]

read = requires_permission("tokens", "read")
write = requires_permission("tokens", "write")


class TokenController(Controller):
    path = "/v1/tokens"
    tags = ["Tokens"]
    dependencies = {
        "token_service": Provide(provide_token_service, sync_to_thread=False),
        "leak_report_service": Provide(provide_leak_report_service, sync_to_thread=False),
    }

    @post("/", operation_id="createToken", guards=[write], status_code=201, opt={"idempotency_redact": ("token",)})
    async def create_token(
        self, data: JSONBody[TokenCreate], token_service: NamedDependency[TokenService]
    ) -> Response[TokenCreated]:
        """Create a token for yourself. The clear token is in this response only; store it now.

        Permissions default to the calling token's current ones and may never exceed them (403
        naming the permission). The lifetime is capped by the workspace maximum (422 above it).
        """
        token = await token_service.create(data)
        return Response(token, status_code=201, headers={"Location": f"/v1/tokens/{token.id}"})

    @get("/", operation_id="listTokens", guards=[read])
    async def list_tokens(
        self,
        token_service: NamedDependency[TokenService],
        limit: Limit = 20,
        cursor: Cursor = None,
        include_revoked: IncludeRevoked = False,
        member_id: MemberId = None,
    ) -> Page[TokenOut]:
        """List your tokens, newest first. Owners and admins may list a member's with `member_id`."""
        return await token_service.list(
            PageRequest(limit=limit, cursor=cursor), include_revoked=include_revoked, member_id=member_id
        )

    @get("/{token_id:str}", operation_id="getToken", guards=[read])
    async def get_token(self, token_id: FromPath[uuid.UUID], token_service: NamedDependency[TokenService]) -> TokenOut:
        """Get one of your tokens (owners and admins: any token of the workspace)."""
        return await token_service.get(token_id)

    @delete("/{token_id:str}", operation_id="revokeToken", guards=[write], status_code=204)
    async def revoke_token(self, token_id: FromPath[uuid.UUID], token_service: NamedDependency[TokenService]) -> None:
        """Revoke a token: it fails from the very next request. Revoking twice is harmless."""
        await token_service.revoke(token_id)

    @post(
        "/{token_id:str}/rotate",
        operation_id="rotateToken",
        guards=[write],
        status_code=201,
        opt={"idempotency_redact": ("token",)},
    )
    async def rotate_token(
        self,
        token_id: FromPath[uuid.UUID],
        token_service: NamedDependency[TokenService],
        data: JSONBody[TokenRotate | None] = None,
    ) -> Response[TokenCreated]:
        """Replace one of your tokens with a new secret; the old one works for the grace period only.

        Presenting the old token after its grace period revokes the replacement too (reuse
        detection): a rotated token seen again is treated as stolen.
        """
        token = await token_service.rotate(token_id, data or TokenRotate())
        return Response(token, status_code=201, headers={"Location": f"/v1/tokens/{token.id}"})

    @post("/leak-report", operation_id="reportLeakedTokens", status_code=202, opt={"problems": (429,)})
    async def report_leaked_tokens(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LeakReport],
        leak_report_service: NamedDependency[LeakReportService],
    ) -> LeakReportReceived:
        """Report tokens found in public. No bearer token needed: every live token listed is revoked.

        The answer is the same whatever the tokens were (live, revoked, unknown or junk). Reports
        are limited per client address (429 with Retry-After past the limit).
        """
        client = request.client.host if request.client else "unknown"
        return await leak_report_service.report(data.tokens, client)


__all__ = ["TokenController"]
