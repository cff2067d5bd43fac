"""Every tenant route that takes an id, for the contracts stated once over all of them.

tests/isolation/test_foreign_ids.py and tests/integration/test_id_routes.py each check that this
list is exactly what the app serves, so a new route with an id fails both until it is added here
(and to their tables).
"""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.routes import HTTPRoute

# (method, path with the parameter's own name, a body that is valid apart from the id)
ID_ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/v1/products/{product_id}", None),
    ("PATCH", "/v1/products/{product_id}", {"name": "x"}),
    ("DELETE", "/v1/products/{product_id}", None),
    ("POST", "/v1/products/{product_id}/restore", None),
    ("POST", "/v1/products/{product_id}/purge", None),
    ("GET", "/v1/lookups/{lookup_id}", None),
    ("PATCH", "/v1/lookups/{lookup_id}", {"name": "x"}),
    ("DELETE", "/v1/lookups/{lookup_id}", None),
    ("GET", "/v1/orders/{order_id}", None),
    ("PATCH", "/v1/orders/{order_id}", {"customer_name": "x"}),
    ("POST", "/v1/orders/{order_id}/transitions", {"to": "processing"}),
    ("GET", "/v1/orders/{order_id}/history", None),
    ("GET", "/v1/members/{member_id}", None),
    ("PATCH", "/v1/members/{member_id}", {"role": "viewer"}),
    ("DELETE", "/v1/members/{member_id}", None),
    ("POST", "/v1/members/{member_id}/deactivate", None),
    ("POST", "/v1/members/{member_id}/reactivate", None),
    ("GET", "/v1/invitations/{invitation_id}", None),
    ("POST", "/v1/invitations/{invitation_id}/revoke", None),
    ("GET", "/v1/tokens/{token_id}", None),
    ("DELETE", "/v1/tokens/{token_id}", None),
    ("POST", "/v1/tokens/{token_id}/rotate", {}),
]


def served_id_routes(app: Litestar) -> set[tuple[str, str]]:
    """(method, path) of every tenant route of `app` with a path parameter (not HEAD or OPTIONS)."""
    return {
        (method, re.sub(r"\{([a-z_]+):[a-z]+\}", r"{\1}", route.path))
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/v1/") and route.path_parameters
        for method in route.methods - {"HEAD", "OPTIONS"}
    }


def generic(path: str) -> str:
    """`/v1/orders/{order_id}/history` -> `/v1/orders/{id}/history`."""
    return re.sub(r"\{[a-z_]+\}", "{id}", path)
