"""/v1/auth: exchange an email, a password and a workspace slug for a short-lived token."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.handlers import post
from tenantry.users.login import PasswordLoginService
from tenantry.users.schemas import IssuedTokenOut, PasswordLogin
from tenantry.users.throttle import LoginThrottle


def provide_login_service(platform_session: NamedDependency[AsyncSession], state: State) -> PasswordLoginService:
    return PasswordLoginService(platform_session, state.settings, LoginThrottle(state.platform_session_factory))


def client_address(request: Request[Any, Any, Any]) -> str:
    """The peer address the server saw (behind a proxy, configure the server to pass the client's)."""
    return request.client.host if request.client else "unknown"


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["Authentication"]
    dependencies = {"login_service": Provide(provide_login_service, sync_to_thread=False)}

    # Public: the credentials are in the body, so there is no bearer token to guard.
    @post(
        "/token", operation_id="createTokenWithPassword", guards=[], status_code=201, opt={"problems": (401, 403, 429)}
    )
    async def create_token(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PasswordLogin],
        login_service: NamedDependency[PasswordLoginService],
    ) -> Response[IssuedTokenOut]:
        """Sign in with a password and get a personal access token for one workspace.

        The token carries the member's role permissions and lives 8 hours unless asked otherwise
        (60 seconds to 24 hours). Every wrong credential answers the same 401; repeated failures
        answer 429 with Retry-After, per account and per client address.
        """
        token = await login_service.login(data, client_address(request))
        return Response(token, status_code=201, headers={"Location": f"/v1/tokens/{token.token_id}"})


__all__ = ["AuthController"]
