"""Helpers shared by the test modules, imported as a package: `from tests.support import Tenant`.

Fixtures live in tests/conftest.py (and nowhere else but the modules that need their own); what a
test calls lives here, one module per concern:

- `settings`: the test run's secrets and `make_settings`;
- `servers`: where the test PostgreSQL comes from (TEST_DATABASE_URL, a container, the embedded one);
- `tenants`: `Tenant`, a provisioned workspace and its owner's token;
- `rows`: ground truth read past RLS, and raw connections switched to the tenant role;
- `http`: the API client type, `serve`, and requests most modules make (products, pages);
- `admin`: platform admin tokens and the admin API's workspaces;
- `members`: invitations accepted into members, passwords set the admin way;
- `business`: lookups and orders, problem answers, snapshots of the business tables.
- `processes`: a real `tenantry serve` (or uvicorn) process against the test database.
"""

from tests.support.admin import (
    WORKSPACES,
    add_products,
    count_rows,
    create_workspace,
    ground_truth,
    issue_admin_token,
    platform_events,
    read_back,
    revoke_admin_token,
    snapshot_all,
    tenant_events,
    unique_slug,
    workspace_body,
    workspace_row,
)
from tests.support.business import (
    BUSINESS_TABLES,
    INTERNALS,
    PROBLEM,
    Caller,
    assert_problem,
    create_lookup,
    create_order,
    rows_of,
    snapshot_business,
    target_audit,
)
from tests.support.http import (
    Client,
    all_pages,
    answer,
    auth_changes_delivered,
    bearer,
    create_product,
    serve,
)
from tests.support.members import (
    ACCEPT,
    PASSWORD,
    Joined,
    invite,
    join,
    new_email,
    set_password,
    workspace_audit,
)
from tests.support.rows import as_tenant, plan_as_tenant, snapshot_rows, snapshot_workspace
from tests.support.settings import TEST_APP_PASSWORD, TEST_PEPPER, make_settings, migrate
from tests.support.tenants import Tenant, new_tenant

__all__ = [
    "ACCEPT",
    "BUSINESS_TABLES",
    "INTERNALS",
    "PASSWORD",
    "PROBLEM",
    "TEST_APP_PASSWORD",
    "TEST_PEPPER",
    "WORKSPACES",
    "Caller",
    "Client",
    "Joined",
    "Tenant",
    "add_products",
    "all_pages",
    "answer",
    "as_tenant",
    "assert_problem",
    "auth_changes_delivered",
    "bearer",
    "count_rows",
    "create_lookup",
    "create_order",
    "create_product",
    "create_workspace",
    "ground_truth",
    "invite",
    "issue_admin_token",
    "join",
    "make_settings",
    "migrate",
    "new_email",
    "new_tenant",
    "plan_as_tenant",
    "platform_events",
    "read_back",
    "revoke_admin_token",
    "rows_of",
    "serve",
    "set_password",
    "snapshot_all",
    "snapshot_business",
    "snapshot_rows",
    "snapshot_workspace",
    "target_audit",
    "tenant_events",
    "unique_slug",
    "workspace_audit",
    "workspace_body",
    "workspace_row",
]
