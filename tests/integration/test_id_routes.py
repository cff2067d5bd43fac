"""Every tenant route with an id refuses an id that is not a UUID: 400, naming the parameter.

Stated once over tests/support/routes.py's ID_ROUTES (the orders and lookups modules each had
their own copy); what a foreign or random UUID gets is tests/isolation/test_foreign_ids.py.
"""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import Client, Tenant, assert_problem, snapshot_workspace
from tests.support.routes import ID_ROUTES, served_id_routes


def test_the_list_is_every_tenant_route_with_an_id(app: Litestar) -> None:
    assert served_id_routes(app) == {(method, path) for method, path, _ in ID_ROUTES}


@pytest.mark.parametrize("bad_id", ["12345", "not-a-uuid"])
@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
async def test_an_id_that_is_not_a_uuid_is_400_naming_the_parameter_and_changes_nothing(
    client: Client,
    admin_engine: AsyncEngine,
    tenant_a: Tenant,
    method: str,
    path: str,
    body: dict[str, object] | None,
    bad_id: str,
) -> None:
    parameter = re.search(r"\{([a-z_]+)\}", path)
    assert parameter is not None
    # A first use stamps the token's last_used_at (at most once a minute): before the snapshot.
    assert (await client.get("/v1/whoami", headers=tenant_a.headers)).status_code == 200
    before = await snapshot_workspace(admin_engine, tenant_a.id)
    kwargs = {"json": body} if body is not None else {}
    response = await client.request(
        method, path.replace(parameter.group(0), bad_id), headers=tenant_a.headers, **kwargs
    )  # type: ignore[arg-type]
    problem = assert_problem(response, 400, "bad-request")
    assert parameter.group(1) in str(problem["errors"])
    assert await snapshot_workspace(admin_engine, tenant_a.id) == before
