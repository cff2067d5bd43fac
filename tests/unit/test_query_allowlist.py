"""The query-parameter allowlist (http/querying.py): what a route declares, and nothing else."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from litestar import Litestar, Request, get
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import CookieParameter, FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from tenantry.app import create_app
from tenantry.http.problems import handle_exception
from tenantry.http.querying import allowed_query_parameters, reject_unknown_query_parameters
from tenantry.settings import load_settings


def _service() -> int:
    return 1


@get("/items/{item_id:str}", dependencies={"service": Provide(_service, sync_to_thread=False)}, sync_to_thread=False)
def get_item(
    item_id: FromPath[str],
    service: int,
    request: Request[Any, Any, Any],
    limit: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    category: Annotated[str | None, QueryParameter(name="category_id")] = None,
    trace: Annotated[str | None, HeaderParameter(name="X-Trace")] = None,
    session: Annotated[str | None, CookieParameter(name="session")] = None,
) -> dict[str, Any]:
    return {"item_id": item_id, "limit": limit, "category": category}


@pytest.fixture(scope="module")
def items() -> TestClient[Litestar]:
    app = Litestar(
        [get_item],
        before_request=reject_unknown_query_parameters,
        exception_handlers={Exception: handle_exception},
    )
    with TestClient(app) as client:
        yield client


def test_the_allowlist_is_the_declared_query_parameters_by_their_query_names(items: TestClient[Litestar]) -> None:
    handler = next(r for r in items.app.routes if isinstance(r, HTTPRoute)).route_handlers[0]
    assert isinstance(handler, HTTPRouteHandler)
    # Not the path parameter, the dependency, the request, a header or a cookie; the alias, not the name.
    assert allowed_query_parameters(handler) == frozenset({"limit", "cursor", "category_id"})


def test_declared_parameters_pass(items: TestClient[Litestar]) -> None:
    response = items.get("/items/x", params={"limit": 5, "cursor": "c", "category_id": "tools"})
    assert response.status_code == 200, response.text
    assert response.json() == {"item_id": "x", "limit": 5, "category": "tools"}


@pytest.mark.parametrize(
    "params",
    [
        {"categroy_id": "tools"},  # a typo: refused, never an unfiltered list
        {"category": "tools"},  # the Python name of an aliased parameter
        {"item_id": "y"},  # a path parameter again in the query
        {"service": "2"},  # a dependency
        {"X-Trace": "1"},  # a header
        {"session": "s"},  # a cookie
        {"tenant_id": "00000000-0000-0000-0000-000000000000"},
    ],
    ids=lambda p: next(iter(p)),
)
def test_anything_else_is_a_400_naming_it(items: TestClient[Litestar], params: dict[str, str]) -> None:
    response = items.get("/items/x", params={"limit": 5, **params})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/unknown-query-parameter")
    name = next(iter(params))
    assert body["errors"] == [{"field": name, "message": "is not a parameter of this route"}]


def test_several_unknown_parameters_are_all_named_in_order(items: TestClient[Litestar]) -> None:
    body = items.get("/items/x", params={"zeta": "1", "alpha": "2"}).json()
    assert [e["field"] for e in body["errors"]] == ["alpha", "zeta"]
    assert "alpha, zeta" in body["detail"]


def test_every_route_of_the_app_allows_exactly_the_query_parameters_its_document_lists() -> None:
    """What a client reads in the OpenAPI document is what the allowlist lets through."""
    settings = load_settings(
        {"DATABASE_URL": "postgresql://u@db.invalid/x", "TENANTRY_TOKEN_PEPPER": "p" * 40, "TENANTRY_APP_PASSWORD": "x"}
    )
    app = create_app(settings)
    document = app.openapi_schema.to_schema()
    checked = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = route.path.replace(":str}", "}")
        for handler in route.route_handlers:
            for method in handler.http_methods - {"HEAD", "OPTIONS"}:
                operation = document["paths"].get(path, {}).get(method.lower())
                if operation is None:
                    continue  # not documented (the docs pages themselves)
                documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                assert allowed_query_parameters(handler) == documented, f"{method} {path}"
                checked += 1
    assert checked > 30
