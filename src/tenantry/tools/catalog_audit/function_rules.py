"""Rules on SECURITY DEFINER functions (F1-F3) in every user schema (extensions' own excluded).

Such a function runs with its owner's rights, before or past the tenant policies: the token
resolver has to, and that is why they must be few, listed, pinned and not callable by everyone.
"""

from __future__ import annotations

from collections.abc import Iterator

from tenantry.tools.catalog_audit.catalog import Catalog, DefinerFunction
from tenantry.tools.catalog_audit.findings import Issue, rule

# The project's SECURITY DEFINER functions (policies/10_auth_functions.sql, and workspace_plan in
# policies/workspace_plans.sql). Deployments that add
# their own pass them with `tenantry audit --allow-definer schema.name`.
DEFINER_ALLOWLIST = frozenset(
    {
        "public.resolve_token",
        "public.resolve_admin_token",
        "public.revoke_leaked_token",
        "public.revoke_leaked_admin_token",
        "public.resolve_invitation",
        "public.member_emails",
        "public.workspace_plan",
    }
)


def search_path(function: DefinerFunction) -> list[str] | None:
    """The pinned search_path as a list of schema names, or None when none is pinned."""
    for entry in function.config:
        name, _, value = entry.partition("=")
        if name == "search_path":
            return [part.strip().strip('"') for part in value.split(",") if part.strip().strip('"')]
    return None


@rule("F1", "high", "SECURITY DEFINER function without a safe pinned search_path")
def pinned_search_path(catalog: Catalog) -> Iterator[Issue]:
    """Without `SET search_path`, the caller's search_path resolves the function's unqualified
    names, so a caller who can create a table or function anywhere on it runs code or reads data
    as the owner. A pinned path that lists schemas must end with pg_temp: left out, pg_temp is
    searched first and a temporary table shadows a real one. An empty path ('') is accepted."""
    for function in catalog.definer_functions:
        path = search_path(function)
        if path is None:
            problem = "has no pinned search_path: the caller's path resolves its names"
        elif path and path[-1] != "pg_temp":
            problem = f"pins search_path to {', '.join(path)} without pg_temp last: temporary objects come first"
        else:
            continue
        yield Issue(
            f"function {function.signature}",
            problem,
            f"ALTER FUNCTION {function.signature} SET search_path = pg_catalog, pg_temp; and qualify every name",
        )


@rule("F2", "high", "SECURITY DEFINER function not on the allowlist")
def allowlisted(catalog: Catalog) -> Iterator[Issue]:
    """Every SECURITY DEFINER function is a door past the policies. The project's are listed in
    DEFINER_ALLOWLIST, reviewed and tested; a new one must be added there (or passed with
    --allow-definer) on purpose, not slip in with a migration."""
    allowed = DEFINER_ALLOWLIST | catalog.allowed_definers
    for function in catalog.definer_functions:
        if f"{function.schema}.{function.name}" not in allowed:
            yield Issue(
                f"function {function.signature}",
                "is SECURITY DEFINER and not on the allowlist",
                f"ALTER FUNCTION {function.signature} SECURITY INVOKER; or review it and allow it "
                f"(--allow-definer {function.schema}.{function.name})",
            )


@rule("F3", "high", "SECURITY DEFINER function executable by PUBLIC")
def not_public(catalog: Catalog) -> Iterator[Issue]:
    """Functions are executable by PUBLIC unless revoked. A definer function must be granted
    only to the role that needs it (the app login role for the token resolvers)."""
    for function in catalog.definer_functions:
        if function.public_execute:
            yield Issue(
                f"function {function.signature}",
                "PUBLIC may EXECUTE it",
                f"REVOKE ALL ON FUNCTION {function.signature} FROM PUBLIC; then GRANT EXECUTE to the role that needs it",
            )


RULES = (pinned_search_path, allowlisted, not_public)
