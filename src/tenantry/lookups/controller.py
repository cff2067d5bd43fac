"""/v1/lookups: create, list, get, patch, delete. The workspace comes only from the token."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.auth.guards import requires_permission, tenant_principal
from tenantry.auth.handlers import delete, get, patch, post
from tenantry.core.schemas import Page
from tenantry.http.etag import IfMatch, etag_of, with_etag
from tenantry.http.querying import Cursor, Limit
from tenantry.lookups.schemas import LookupCreate, LookupFilters, LookupKind, LookupOut, LookupUpdate
from tenantry.lookups.service import LookupService
from tenantry.tenancy.pagination import PageRequest


def provide_lookup_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> LookupService:
    return LookupService(db_session, tenant_principal(request), state.cursor_key)


KindFilter = Annotated[LookupKind | None, Parameter(description="Only entries of this kind.")]
LookupSort = Annotated[
    Literal["position", "-position", "code", "-code", "name", "-name", "created_at", "-created_at"],
    Parameter(description="Sort field; a leading '-' sorts descending. Ties are broken by id."),
]

read = requires_permission("lookups", "read")
write = requires_permission("lookups", "write")


class LookupController(Controller):
    path = "/v1/lookups"
    tags = ["Lookups"]
    dependencies = {"lookup_service": Provide(provide_lookup_service, sync_to_thread=False)}

    @post("/", operation_id="createLookup", guards=[write], status_code=201)
    async def create_lookup(
        self, data: JSONBody[LookupCreate], lookup_service: NamedDependency[LookupService]
    ) -> Response[LookupOut]:
        """Add an entry to one of the workspace's lookup lists (a product category or an order tag)."""
        lookup = await lookup_service.create(data)
        return Response(
            lookup, status_code=201, headers={"Location": f"/v1/lookups/{lookup.id}", "ETag": etag_of(lookup)}
        )

    @get("/", operation_id="listLookups", guards=[read])
    async def list_lookups(
        self,
        lookup_service: NamedDependency[LookupService],
        limit: Limit = 20,
        cursor: Cursor = None,
        kind: KindFilter = None,
        sort: LookupSort = "position",
    ) -> Page[LookupOut]:
        """List entries with keyset pagination, each with its usage count; filter by kind."""
        return await lookup_service.list(PageRequest(limit=limit, cursor=cursor, sort=sort), LookupFilters(kind=kind))

    @get("/{lookup_id:str}", operation_id="getLookup", guards=[read])
    async def get_lookup(
        self, lookup_id: FromPath[uuid.UUID], lookup_service: NamedDependency[LookupService]
    ) -> Response[LookupOut]:
        """Get one entry and its usage count, with its ETag. Another workspace's id answers 404 like a random one."""
        return with_etag(await lookup_service.get(lookup_id))

    @patch("/{lookup_id:str}", operation_id="updateLookup", guards=[write])
    async def update_lookup(
        self,
        lookup_id: FromPath[uuid.UUID],
        data: JSONBody[LookupUpdate],
        lookup_service: NamedDependency[LookupService],
        if_match: IfMatch = None,
    ) -> Response[LookupOut]:
        """Change the fields present (never the kind: 422); with If-Match, only if unchanged (else 412)."""
        return with_etag(await lookup_service.update(lookup_id, data, if_match=if_match))

    @delete("/{lookup_id:str}", operation_id="deleteLookup", guards=[write], status_code=204)
    async def delete_lookup(
        self,
        lookup_id: FromPath[uuid.UUID],
        lookup_service: NamedDependency[LookupService],
        if_match: IfMatch = None,
    ) -> None:
        """Delete an entry nothing uses (else 409 with the usage count); with If-Match, only if unchanged."""
        await lookup_service.delete(lookup_id, if_match=if_match)


__all__ = ["LookupController"]
