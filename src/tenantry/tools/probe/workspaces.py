"""The two probe workspaces: made through POST /admin/v1/workspaces, purged at the end.

Purging (schedule the deletion, then purge with the slug typed out) deletes every tenant row and
leaves the tombstones a purge always keeps. It does not delete users: they are global (one
account, many workspaces) and no API deletes them. So every run leaves five user rows behind, all
with an email in `PROBE_EMAIL_DOMAIN` (`@probe.tenantry.invalid`): the two owners, B's and A's
accepted invitee and A's one "spare" member (re-invited under the same address for every DELETE of
a member). They belong to no workspace after the purge, and cannot sign in anywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from tenantry.tools.probe.samples.base import PROBE_EMAIL_DOMAIN, SampleError

ADMIN_WORKSPACES = "/admin/v1/workspaces"


@dataclass(frozen=True)
class ProbeWorkspace:
    id: str
    slug: str
    token: str  # the owner's clear token


@dataclass
class ProbeWorkspaces:
    http: httpx.AsyncClient
    admin_token: str
    made: list[ProbeWorkspace] = field(default_factory=list)
    cleanup_errors: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create(self, label: str) -> ProbeWorkspace:
        slug = f"probe-{label}-{uuid.uuid4().hex[:12]}"
        body = {"slug": slug, "name": f"Tenantry probe {label}", "owner_email": f"owner-{slug}@{PROBE_EMAIL_DOMAIN}"}
        response = await self.http.post(ADMIN_WORKSPACES, json=body, headers=self.headers)
        if response.status_code != 201:
            raise SampleError(f"POST {ADMIN_WORKSPACES} answered {response.status_code}: {response.text[:300]}")
        created = response.json()
        workspace = ProbeWorkspace(id=created["workspace"]["id"], slug=slug, token=created["owner_token"])
        self.made.append(workspace)
        return workspace

    async def purge(self, workspace: ProbeWorkspace) -> None:
        base = f"{ADMIN_WORKSPACES}/{workspace.id}"
        steps = (
            (f"{base}/schedule-deletion", {"purge_after_days": 1}),
            (f"{base}/purge", {"confirm_slug": workspace.slug}),
        )
        for path, body in steps:
            try:
                response = await self.http.post(path, json=body, headers=self.headers)
            except httpx.HTTPError as exc:
                self.cleanup_errors.append(f"POST {path} failed: {exc!r}")
                return
            if response.status_code != 200:
                self.cleanup_errors.append(f"POST {path} answered {response.status_code}: {response.text[:200]}")
                return


@asynccontextmanager
async def probe_workspaces(http: httpx.AsyncClient, admin_token: str) -> AsyncIterator[ProbeWorkspaces]:
    """Workspaces made inside the block are purged when it ends, whatever happened in it."""
    workspaces = ProbeWorkspaces(http, admin_token)
    try:
        yield workspaces
    finally:
        for workspace in workspaces.made:
            await workspaces.purge(workspace)
