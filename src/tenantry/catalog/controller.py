"""/v1/products: create, list, get, patch, delete, restore, purge. The workspace comes only from the token."""

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
from tenantry.catalog.schemas import ProductCreate, ProductFilters, ProductOut, ProductUpdate
from tenantry.catalog.service import ProductReads, ProductService
from tenantry.core.schemas import Page
from tenantry.http.etag import IfMatch, with_etag
from tenantry.http.querying import Cursor, Limit
from tenantry.tenancy.pagination import PageRequest


def provide_product_service(
    db_session: NamedDependency[AsyncSession], request: Request[Any, Any, Any], state: State
) -> ProductService:
    return ProductService(db_session, tenant_principal(request), state.cursor_key, state.session_factory)


def product_reads(request: Request[Any, Any, Any]) -> ProductReads:
    """The reads of the request's caller. Built by the handler, not injected: no session for the
    request (each read opens its own transaction, catalog/service.py), and no dependency for
    Litestar to resolve on the two most frequent requests (docs/performance.md)."""
    state = request.app.state
    return ProductReads(state.session_factory, tenant_principal(request), state.cursor_key)


IncludeDeleted = Annotated[bool, Parameter(description="Also return soft-deleted products.")]
NamePrefix = Annotated[
    str | None, Parameter(min_length=1, max_length=200, description="Only products whose name starts with this.")
]
CategoryFilter = Annotated[uuid.UUID | None, Parameter(description="Only products in this category.")]
ProductSort = Annotated[
    Literal["created_at", "-created_at", "name", "-name", "price_cents", "-price_cents"],
    Parameter(description="Sort field; a leading '-' sorts descending. Ties are broken by id."),
]

read = requires_permission("products", "read")
write = requires_permission("products", "write")


class ProductController(Controller):
    path = "/v1/products"
    tags = ["Products"]
    dependencies = {
        "product_service": Provide(provide_product_service, sync_to_thread=False),
    }

    @post("/", operation_id="createProduct", guards=[write], status_code=201)
    async def create_product(
        self, data: JSONBody[ProductCreate], product_service: NamedDependency[ProductService]
    ) -> Response[ProductOut]:
        """Create a product in the token's workspace."""
        product = await product_service.create(data)
        return Response(product, status_code=201, headers={"Location": f"/v1/products/{product.id}"})

    @get("/", operation_id="listProducts", guards=[read])
    async def list_products(
        self,
        request: Request[Any, Any, Any],
        limit: Limit = 20,
        cursor: Cursor = None,
        include_deleted: IncludeDeleted = False,
        name_prefix: NamePrefix = None,
        sort: ProductSort = "created_at",
        category_id: CategoryFilter = None,
    ) -> Page[ProductOut]:
        """List products with keyset pagination; filter by name prefix or category, sort by an allowed field."""
        return await product_reads(request).list(
            PageRequest(limit=limit, cursor=cursor, sort=sort),
            ProductFilters(include_deleted=include_deleted, name_prefix=name_prefix, category_id=category_id),
        )

    @get("/{product_id:str}", operation_id="getProduct", guards=[read])
    async def get_product(
        self,
        request: Request[Any, Any, Any],
        product_id: FromPath[uuid.UUID],
        include_deleted: IncludeDeleted = False,
    ) -> Response[ProductOut]:
        """Get one product, with its ETag. Another workspace's id answers 404 like an id that never existed."""
        return with_etag(await product_reads(request).get(product_id, include_deleted=include_deleted))

    @patch("/{product_id:str}", operation_id="updateProduct", guards=[write])
    async def update_product(
        self,
        product_id: FromPath[uuid.UUID],
        data: JSONBody[ProductUpdate],
        product_service: NamedDependency[ProductService],
        if_match: IfMatch = None,
    ) -> Response[ProductOut]:
        """Change the fields present in the body; with If-Match, only if nobody changed it since (else 412)."""
        return with_etag(await product_service.update(product_id, data, if_match=if_match))

    @delete("/{product_id:str}", operation_id="deleteProduct", guards=[write], status_code=204)
    async def delete_product(
        self,
        product_id: FromPath[uuid.UUID],
        product_service: NamedDependency[ProductService],
        if_match: IfMatch = None,
    ) -> None:
        """Soft-delete a product (it can be restored); with If-Match, only if unchanged (else 412)."""
        await product_service.delete(product_id, if_match=if_match)

    @post("/{product_id:str}/restore", operation_id="restoreProduct", guards=[write], status_code=200)
    async def restore_product(
        self, product_id: FromPath[uuid.UUID], product_service: NamedDependency[ProductService]
    ) -> ProductOut:
        """Undo a soft delete."""
        return await product_service.restore(product_id)

    @post("/{product_id:str}/purge", operation_id="purgeProduct", guards=[write], status_code=204)
    async def purge_product(
        self, product_id: FromPath[uuid.UUID], product_service: NamedDependency[ProductService]
    ) -> None:
        """Erase a soft-deleted product for good: 409 if it is live, or while orders refer to it (with the count)."""
        await product_service.purge(product_id)


__all__ = ["ProductController"]
