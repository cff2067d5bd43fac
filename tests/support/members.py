"""Members made the way a workspace gets them: invited by its owner, accepted, a password set by an admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.admin.accounts import UserPasswordService
from tenantry.db.engine import create_engine
from tenantry.settings import Settings
from tenantry.tenancy.session import platform_session_factory
from tests.support.http import Client
from tests.support.tenants import Tenant

PASSWORD = "correct horse battery staple"
ACCEPT = "/v1/invitations/accept"


@dataclass
class Joined:
    """A member who joined through an invitation, with their first token and the password a
    platform admin set for them afterwards (None: they have none)."""

    member: dict[str, object]
    token: str
    email: str
    password: str | None

    @property
    def id(self) -> str:
        return str(self.member["id"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


async def invite(
    client: Client, inviter_headers: dict[str, str], email: str, role: str = "member", **fields: object
) -> dict[str, object]:
    response = await client.post(
        "/v1/invitations", json={"email": email, "role": role, **fields}, headers=inviter_headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def set_password(settings: Settings, email: str, password: str) -> None:
    """What `tenantry admin user set-password` does: the one way an account gets a password."""
    engine = create_engine(settings.app_url, settings, pool_size=1)
    try:
        async with platform_session_factory(engine, settings)() as session:
            await UserPasswordService(session).set_password(email, password)
    finally:
        await engine.dispose()


async def join(
    client: Client,
    tenant: Tenant,
    role: str = "member",
    *,
    email: str | None = None,
    password: str | None = PASSWORD,
    display_name: str = "",
) -> Joined:
    """Invite (as the tenant's owner) and accept: a new member with a token of their own.

    Accepting sets no password; with `password`, a platform admin sets it afterwards.
    """
    email = email or new_email(role)
    invitation = await invite(client, tenant.headers, email, role)
    response = await client.post(ACCEPT, json={"token": invitation["token"], "display_name": display_name})
    assert response.status_code == 201, response.text
    accepted = response.json()
    if password is not None:
        await set_password(client.app.state.settings, email, password)
    return Joined(member=accepted["member"], token=accepted["token"]["token"], email=email, password=password)


async def workspace_audit(admin_engine: AsyncEngine, tenant_id: uuid.UUID) -> list[dict[str, object]]:
    """Every audit event of the workspace, oldest first, read past RLS."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT * FROM public.audit_events WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id}
        )
        return [dict(r._mapping) for r in rows]
