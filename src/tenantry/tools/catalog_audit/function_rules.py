"""Rules on SECURITY DEFINER functions (F1-F3) and on setting the tenant (F4-F6), in every user
schema (extensions' own excluded), and in role and database defaults (F6).

A definer function runs with its owner's rights, before or past the tenant policies: the token
resolver has to, and that is why they must be few, listed, pinned and not callable by everyone.
The tenant is set by one function only (tenancy/session.py names it, migration 0008 creates it):
on Citus, a tenant set in two ways in one transaction is read on the coordinator and enforced on
the workers as two different tenants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tenantry.tenancy.session import SET_CONTEXT_FUNCTION, TENANT_SETTING
from tenantry.tools.catalog_audit.catalog import Catalog, DefinerFunction, SourceFunction
from tenantry.tools.catalog_audit.findings import Issue, rule

_SETTING = re.escape(TENANT_SETTING)
# set_config('<setting>', ...), and SET [LOCAL | SESSION] <setting>, also as the text of a dynamic
# EXECUTE (with = or TO after it, all the same).
_SETTERS = (
    re.compile(rf"set_config\s*\(\s*'{_SETTING}'", re.IGNORECASE),
    re.compile(rf"\bset\s+(?:local\s+|session\s+)?{_SETTING}\b", re.IGNORECASE),
)

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


def _how_it_sets_the_tenant(function: SourceFunction) -> str | None:
    if any(entry.split("=", 1)[0].strip().lower() == TENANT_SETTING for entry in function.config):
        return f"has a SET {TENANT_SETTING} clause"
    for setter in _SETTERS:
        found = setter.search(function.source)
        if found:
            return f"sets the tenant ({found.group(0).strip()})"
    return None


@rule("F4", "high", "function other than the context function sets the tenant")
def one_way_to_set_the_tenant(catalog: Catalog) -> Iterator[Issue]:
    """Only the context function may set the tenant, by `SET LOCAL`: Citus sends that to the
    workers and does not send `set_config()`, so a tenant set both ways in one transaction is
    one tenant on the coordinator and another on the workers, whose rows are then read and
    written. Finds every function outside extensions whose body calls `set_config` on the tenant
    setting or runs `SET` on it (also inside a dynamic `EXECUTE` string), or that has a `SET`
    clause for it. The body is searched as text: a setter built from pieces is not found."""
    exempt = f"{catalog.schema}.{SET_CONTEXT_FUNCTION}("
    for function in catalog.setting_functions:
        if function.signature.startswith(exempt):
            continue
        how = _how_it_sets_the_tenant(function)
        if how:
            yield Issue(
                f"function {function.signature}",
                f"{how}: only {catalog.schema}.{SET_CONTEXT_FUNCTION}() may set it",
                f"DROP FUNCTION {function.signature}; and set the tenant through "
                f"{catalog.schema}.{SET_CONTEXT_FUNCTION}() in the transaction instead",
            )


@rule("F5", "high", "context function missing, SECURITY DEFINER, or executable by a serving role")
def context_function_for_the_login_role(catalog: Catalog) -> Iterator[Issue]:
    """The context function switches role and tenant for the app login role; it must be the one
    function of its name, SECURITY INVOKER (SET ROLE is then checked against the login role's
    memberships, and a definer function may not run SET ROLE at all), and executable by no role
    a request can become: a transaction that has switched to the tenant role must not be able to
    switch tenants with it. Checks PUBLIC and every serving role but the login role."""
    where = f"function {catalog.schema}.{SET_CONTEXT_FUNCTION}"
    if not catalog.context_functions:
        yield Issue(where, "does not exist: nothing can set the tenant", "run `tenantry db upgrade` (migration 0008)")
        return
    if len(catalog.context_functions) > 1:
        yield Issue(
            where,
            f"has {len(catalog.context_functions)} overloads: "
            + ", ".join(f.signature for f in catalog.context_functions),
            "drop every overload but the one of migration 0008",
        )
    forbidden = {"public", *(name for name in catalog.serving_roles() if name != catalog.roles.app)}
    for function in catalog.context_functions:
        if function.security_definer:
            yield Issue(
                f"function {function.signature}",
                "is SECURITY DEFINER: it would switch roles with its owner's rights",
                f"ALTER FUNCTION {function.signature} SECURITY INVOKER;",
            )
        executors = sorted(forbidden & set(function.executors))
        if executors:
            grantees = ", ".join("PUBLIC" if name == "public" else f'"{name}"' for name in executors)
            yield Issue(
                f"function {function.signature}",
                f"{', '.join(executors)} may EXECUTE it, so a switched transaction could set another tenant",
                f"REVOKE ALL ON FUNCTION {function.signature} FROM {grantees}; "
                f'GRANT EXECUTE ON FUNCTION {function.signature} TO "{catalog.roles.app}";',
            )


@rule("F6", "high", "the tenant setting has a default outside the transaction")
def no_default_tenant(catalog: Catalog) -> Iterator[Issue]:
    """A value for the tenant setting given by `ALTER ROLE ... SET`, `ALTER DATABASE ... SET` or the
    server's configuration is a second way of setting the tenant: every session starts in that
    workspace, so a transaction that never set its context reads and writes that workspace's rows
    instead of none (the contract fails closed only while the setting is empty). On Citus such a
    default is also applied on each worker connection, beside the SET LOCAL the context function
    sends. Reads pg_db_role_setting for this database and all databases, and pg_settings for a
    value from postgresql.conf or the command line."""
    for default in catalog.setting_defaults:
        yield Issue(
            default.target,
            f"gives the tenant setting a default ({default.entry}): a transaction that sets no context "
            "is in that workspace",
            f"{default.reset(TENANT_SETTING)} and set the tenant only through "
            f"{catalog.schema}.{SET_CONTEXT_FUNCTION}()",
        )


RULES = (
    pinned_search_path,
    allowlisted,
    not_public,
    one_way_to_set_the_tenant,
    context_function_for_the_login_role,
    no_default_tenant,
)
