"""What each domain gives the prober: one object of its resource, made through the public API.

A sample factory runs once per probe workspace, as that workspace's owner, over HTTP (so the same
code serves the app in process and a deployment). It returns a `Sample`:

- `ids`: the ids it made, by path-parameter name (`product_id`), plus ids that bodies and queries
  refer to (`category_id`, `order_tag_id`);
- `routes`: every route it covers, by "METHOD /path/{template}", each with a `Use` that builds a
  valid body and query from a workspace's ids. Builders read ids by name from the mapping they are
  given, so the prober learns which ids a body carries and can swap each for B's (re-parenting,
  ids inside bodies) or for a random one;
- a `Use` of a route that consumes its object (delete, revoke, rotate, a one-way transition) also
  has `fresh`: it makes a new object and returns its ids, so that every request of A's own that
  must succeed (the control, each tenant-header variant) meets an object in the state it needs.

Every email a factory sends (invitees) ends in `PROBE_EMAIL_DOMAIN`: accepting an invitation makes
a global user row, which no purge of a workspace deletes (see `tenantry.tools.probe.workspaces`).

Factories run in registry order (`tenantry.tools.probe.samples.SAMPLES`) and see the ids made before them. A
route no factory covers is reported as unprobed: a new route needs a sample to pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Ids = Mapping[str, str]
BodyBuilder = Callable[[Ids], Any]
QueryBuilder = Callable[[Ids], dict[str, str]]
FreshMaker = Callable[[Ids], Awaitable[dict[str, str]]]
# Reserved (RFC 2606 .invalid): no mail is ever sent there, and the probe's leftover user rows
# (owners and accepted invitees, see workspaces.py) are told apart by it.
PROBE_EMAIL_DOMAIN = "probe.tenantry.invalid"


class SampleError(Exception):
    """A sample could not be made: the probe cannot run (exit 2), it is not a finding."""


@dataclass(frozen=True)
class Use:
    """How to call one route validly; `body=None` sends no body at all.

    `fresh`, for routes whose success consumes the object (a second call would be a 404 or a
    409), makes a new one from the ids made so far and returns the ids to call it with.
    """

    body: BodyBuilder | None = None
    query: QueryBuilder | None = None
    fresh: FreshMaker | None = None


@dataclass
class Sample:
    ids: dict[str, str] = field(default_factory=dict)
    routes: dict[str, Use] = field(default_factory=dict)


class TenantApi:
    """The public API as one probe workspace's owner sees it."""

    def __init__(self, http: httpx.AsyncClient, token: str, marker: str) -> None:
        self.http = http
        self.token = token
        # A string no other workspace carries: factories put it in names, so a leak is visible.
        self.marker = marker

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def unique(self, prefix: str) -> str:
        """A fresh value carrying the marker, for fields that must be unique."""
        return f"{prefix}-{self.marker}-{uuid.uuid4().hex[:8]}"

    def email(self, local: str) -> str:
        """An address in the probe's reserved domain; the same `local` gives the same address."""
        return f"{local}-{self.marker}@{PROBE_EMAIL_DOMAIN}"

    async def post(self, path: str, body: Any = None, *, authenticated: bool = True) -> dict[str, Any]:
        headers = self.headers if authenticated else {}
        response = await self.http.post(path, json=body, headers=headers)
        return _expect(response, "POST", path)

    async def delete(self, path: str) -> None:
        response = await self.http.delete(path, headers=self.headers)
        if not response.is_success:
            raise SampleError(f"DELETE {path} answered {response.status_code}: {response.text[:300]}")

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = await self.http.get(path, params=dict(params or {}), headers=self.headers)
        return _expect(response, "GET", path)


def _expect(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if not response.is_success:
        raise SampleError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    document = response.json()
    if not isinstance(document, dict):
        raise SampleError(f"{method} {path} answered {response.status_code} without a JSON object")
    return document


SampleFactory = Callable[[TenantApi, Ids], Awaitable[Sample]]
