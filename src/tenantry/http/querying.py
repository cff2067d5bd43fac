"""Query parameters are an allowlist: a parameter a route does not declare is a 400, not ignored.

Every route declares its filters and sort as typed handler parameters (so Litestar validates them
and the OpenAPI document lists them); this check refuses anything else, so a client that misspells
`categroy_id` learns it at once instead of silently getting an unfiltered list.

No query value may hold a control character either: PostgreSQL text cannot store NUL (it would be
refused by the database, as a 422 after a round trip), and a filter never needs one. The OpenAPI
document says so on every string parameter (http/openapi.py).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any

from litestar import Request
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter, ParameterKwarg

from tenantry.core.errors import DomainError
from tenantry.tenancy.pagination import MAX_LIMIT

# The paging parameters of every list (tenancy/pagination.py reads them as a PageRequest).
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size, 1 to 100.")]
Cursor = Annotated[str | None, Parameter(max_length=512, description="Opaque cursor from `next_cursor`.")]

# Names Litestar injects that are never query parameters.
_RESERVED = frozenset({"data", "request", "state", "headers", "cookies", "scope", "query", "body", "socket", "self"})


# C0 controls (NUL, tab, newline included), DEL and C1 controls.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same rule as a JSON Schema pattern for the OpenAPI document. Not `^...$`: in Python `$` also
# matches before a final newline, and schema-driven tools that read the pattern with Python's `re`
# would take `"a\n"` for valid; the lookahead means "end of the value" in ECMA-262 and Python alike.
NO_CONTROL_CHARACTERS_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*(?![\s\S])"


class InvalidQueryParameter(DomainError):
    status = 400
    type = "bad-request"
    title = "Bad request"


class UnknownQueryParameter(DomainError):
    status = 400
    type = "unknown-query-parameter"
    title = "Unknown query parameter"


@cache
def allowed_query_parameters(handler: HTTPRouteHandler) -> frozenset[str]:
    """The query parameter names a handler declares (by alias where it sets one)."""
    dependencies = set(handler.resolve_dependencies())
    path_names = {name for path in handler.paths for name in _path_parameter_names(path)}
    allowed = set()
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in _RESERVED or name in dependencies or name in path_names:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.param_type is not ParamType.QUERY:
                continue  # headers, cookies and path parameters are not query parameters
            allowed.add(getattr(kwarg, "name", None) or kwarg.query or name)
        elif kwarg is None:
            allowed.add(name)
    return frozenset(allowed)


def _path_parameter_names(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def reject_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    unknown = sorted(set(request.query_params) - allowed_query_parameters(request.route_handler))
    if unknown:
        raise UnknownQueryParameter(
            f"Unknown query parameter: {', '.join(unknown)}.",
            errors=[{"field": name, "message": "is not a parameter of this route"} for name in unknown],
        )


def reject_control_characters(request: Request[Any, Any, Any]) -> None:
    """400 for a control character in any query value, before a handler or the database sees it."""
    names = sorted({name for name, value in request.query_params.multi_items() if CONTROL_CHARACTERS.search(value)})
    if names:
        raise InvalidQueryParameter(
            "The request is not valid.",
            errors=[{"field": name, "message": "must not contain control characters"} for name in names],
        )
