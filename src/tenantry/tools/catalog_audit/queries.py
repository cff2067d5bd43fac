"""Reading the snapshot from the live catalog, in the caller's transaction.

Everything comes from the system catalogs (pg_class, pg_attribute, pg_policy, pg_index,
pg_constraint, pg_depend, pg_rewrite, pg_proc, pg_roles, pg_auth_members) and the
has_*_privilege functions. All of them are readable by any role, so the audit needs no privilege:
run it as the app login role or a read-only monitoring role, not the migration account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantry.tenancy.session import SET_CONTEXT_FUNCTION, TENANT_SETTING
from tenantry.tools.catalog_audit.catalog import (
    APP_SCHEMA,
    BOOKKEEPING_TABLES,
    TENANT_COLUMN,
    AuditError,
    AuditRoles,
    Catalog,
    CitusState,
    Column,
    ContextFunction,
    DefinerFunction,
    Distribution,
    ForeignKey,
    Index,
    Membership,
    Policy,
    Role,
    SettingDefault,
    SourceFunction,
    Table,
    View,
    qualify,
)

# A schema that users create objects in: not pg_catalog, pg_toast, pg_temp_N or information_schema.
_USER_SCHEMA = "(n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')"


async def _rows(connection: AsyncConnection, query: str, **params: Any) -> list[Any]:
    return list((await connection.execute(text(query), params)).all())


_TABLES = """
SELECT c.oid, c.relname, format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
"""

_COLUMNS = """
SELECT a.attrelid, a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
"""

_POLICIES = """
SELECT p.polname::text, p.polrelid, p.polpermissive, p.polcmd::text,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) AS r),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
       ARRAY(SELECT DISTINCT format('%I.%I', dn.nspname, dc.relname)
               FROM pg_depend d JOIN pg_class dc ON dc.oid = d.refobjid
               JOIN pg_namespace dn ON dn.oid = dc.relnamespace
              WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> p.polrelid),
       ARRAY(SELECT DISTINCT format('%I.%I(%s)', fn.nspname, f.proname, pg_get_function_identity_arguments(f.oid))
               FROM pg_depend d JOIN pg_proc f ON f.oid = d.refobjid
               JOIN pg_namespace fn ON fn.oid = f.pronamespace
              WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_proc'::regclass)
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :schema
 ORDER BY p.polrelid, p.polname
"""
_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}

# indkey is an int2vector: through text to a plain 1-based array.
_INDEXES = """
SELECT format('%I.%I', n.nspname, ic.relname), i.indrelid, string_to_array(i.indkey::text, ' ')::int[],
       i.indnkeyatts, i.indisunique, i.indisprimary, i.indisexclusion, i.indisvalid,
       pg_get_expr(i.indpred, i.indrelid), pg_get_indexdef(i.indexrelid), con.conname::text
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                             AND con.contype IN ('p', 'u', 'x')
 WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
 ORDER BY 1
"""

# conparentid <> 0: the copy of a partitioned table's key on each partition; the parent's is checked.
_FOREIGN_KEYS = """
SELECT con.conname::text, con.conrelid, con.confrelid, format('%I.%I', rn.nspname, rc.relname), con.conkey::int[],
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.pos),
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, pos)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.pos)
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0 AND n.nspname = :schema
 ORDER BY 1
"""

_ROLES = "SELECT oid, rolname::text, rolsuper, rolbypassrls FROM pg_roles"
# PostgreSQL 16 made INHERIT and SET per grant; before, INHERIT was the member's attribute and
# every membership allowed SET ROLE.
_MEMBERSHIPS_16 = "SELECT member, roleid, inherit_option, set_option FROM pg_auth_members"
_MEMBERSHIPS_15 = (
    "SELECT m.member, m.roleid, r.rolinherit, true FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
)

_OWNED = f"""
WITH r AS (SELECT oid, rolname::text AS name FROM pg_roles WHERE rolname = ANY(CAST(:names AS text[])))
SELECT r.name, CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                             WHEN 'f' THEN 'foreign table' ELSE 'table' END,
       format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN r ON r.oid = c.relowner
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMA}
UNION ALL
SELECT r.name, 'function', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN r ON r.oid = p.proowner
 WHERE {_USER_SCHEMA}
UNION ALL
SELECT r.name, 'schema', format('%I', n.nspname) FROM pg_namespace n JOIN r ON r.oid = n.nspowner
UNION ALL
SELECT r.name, 'database', format('%I', d.datname) FROM pg_database d JOIN r ON r.oid = d.datdba
 WHERE d.datname = current_database()
ORDER BY 1, 2, 3
"""

# has_schema_privilege on every schema: CREATE on pg_catalog or a temp schema would be as bad.
_MAY_CREATE = """
SELECT r.name, 'schema ' || format('%I', n.nspname)
  FROM unnest(CAST(:names AS text[])) AS r(name) JOIN pg_namespace n ON has_schema_privilege(r.name, n.oid, 'CREATE')
UNION ALL
SELECT r.name, 'database ' || format('%I', current_database())
  FROM unnest(CAST(:names AS text[])) AS r(name) WHERE has_database_privilege(r.name, current_database(), 'CREATE')
ORDER BY 1, 2
"""

# Functions an extension installed are the extension's business, not the application's.
_DEFINER_FUNCTIONS = f"""
SELECT n.nspname::text, p.proname::text,
       format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       coalesce(p.proconfig, '{{}}'), has_function_privilege('public', p.oid, 'EXECUTE')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND {_USER_SCHEMA}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 3
"""

# Every function outside extensions whose body or SET clauses name the tenant setting: rule F4
# decides which of them set it.
_SETTING_FUNCTIONS = f"""
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       coalesce(p.prosrc, ''), coalesce(p.proconfig, '{{}}')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER_SCHEMA}
   AND (strpos(lower(coalesce(p.prosrc, '')), :setting) > 0
        OR strpos(lower(coalesce(array_to_string(p.proconfig, ' '), '')), :setting) > 0)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""

# The context function(s) in the app schema, and every role but its owner and superusers that may
# execute it; rule F5 picks the serving roles among them.
_CONTEXT_FUNCTION = """
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), p.prosecdef,
       ARRAY(SELECT 'public'::text WHERE has_function_privilege('public', p.oid, 'EXECUTE')
             UNION ALL
             SELECT r.rolname::text FROM pg_roles r
              WHERE r.oid <> p.proowner AND NOT r.rolsuper AND r.rolname !~ '^pg_'
                AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
             ORDER BY 1)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = :schema AND p.proname = :name
 ORDER BY 1
"""

# A view's query is its rewrite rule; pg_depend records what the rule reads.
_VIEWS = f"""
SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind = 'm', coalesce(c.reloptions, '{{}}'),
       ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite w
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
              WHERE w.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND {_USER_SCHEMA}
 ORDER BY 2
"""

# Defaults for the tenant setting outside any transaction, for this database or all of them
# (pg_db_role_setting is readable by every role), and a value from the server's configuration.
_SETTING_DEFAULTS = """
SELECT r.rolname::text, d.datname::text, c, NULL::text
  FROM pg_db_role_setting s CROSS JOIN unnest(s.setconfig) AS c
  LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
 WHERE (s.setdatabase = 0 OR d.datname = current_database()) AND lower(split_part(c, '=', 1)) = :setting
UNION ALL
SELECT NULL, NULL, name || '=' || setting, source
  FROM pg_settings WHERE name = :setting AND source IN ('configuration file', 'command line', 'environment variable')
ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3
"""

# --- Citus (only queried where the extension exists: these catalogs are its own) ----------------

_CITUS_EXTENSION = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
_CITUS_WORKERS = "SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' AND isactive"
# partmethod h: hash-distributed; n: a reference table (repmodel t), a Citus local table
# (colocation 0) or a single-shard distributed one; a and r: append and range distribution.
_CITUS_TABLES = """
SELECT p.logicalrelid::oid, p.partmethod::text, p.repmodel::text, p.colocationid,
       CASE WHEN p.partkey IS NOT NULL AND p.partkey <> '' THEN column_to_column_name(p.logicalrelid, p.partkey) END,
       (SELECT count(*) FROM pg_dist_shard AS s WHERE s.logicalrelid = p.logicalrelid)
  FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :schema
"""
# citus.propagate_set_commands as the app login role gets it here: ALTER ROLE ... IN DATABASE,
# then ALTER ROLE, then ALTER DATABASE, as PostgreSQL applies them at login.
_PROPAGATE_FOR_ROLE = """
SELECT substr(c, strpos(c, '=') + 1),
       CASE WHEN s.setrole <> 0 AND s.setdatabase <> 0 THEN 'ALTER ROLE ... IN DATABASE'
            WHEN s.setrole <> 0 THEN 'ALTER ROLE' ELSE 'ALTER DATABASE' END
  FROM pg_db_role_setting s CROSS JOIN unnest(s.setconfig) AS c
 WHERE s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = :role))
   AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
   AND NOT (s.setrole = 0 AND s.setdatabase = 0)
   AND lower(split_part(c, '=', 1)) = 'citus.propagate_set_commands'
 ORDER BY (s.setrole = 0), (s.setdatabase = 0)
 LIMIT 1
"""
# Else the server's value. When the auditing role has a setting of its own, that is what this
# session shows, and the server's configured value cannot be told from it: the built-in default.
_PROPAGATE_SERVER = """
SELECT CASE WHEN source IN ('user', 'database user') THEN boot_val ELSE reset_val END,
       CASE WHEN source IN ('user', 'database user') THEN 'the built-in default' ELSE 'the server (' || source || ')' END
  FROM pg_settings WHERE name = 'citus.propagate_set_commands'
"""
_DIST_KINDS = {"h": "distributed", "a": "append", "r": "range"}


def _kind(method: str, replication: str, colocation: int) -> str:
    if method != "n":
        return _DIST_KINDS.get(method, f"partmethod {method}")
    if replication == "t":
        return "reference"
    return "citus local" if colocation == 0 else "single shard"


async def load_citus(connection: AsyncConnection, app_role: str, schema: str = APP_SCHEMA) -> CitusState:
    """The Citus facts of this database; a plain PostgreSQL database gives the default, not a cluster."""
    if not (await _rows(connection, _CITUS_EXTENSION))[0][0]:
        return CitusState()
    workers = int((await _rows(connection, _CITUS_WORKERS))[0][0])
    if workers == 0:
        return CitusState(status="the citus extension is installed but no worker is registered: nothing is distributed")
    tables = {
        oid: Distribution(_kind(method, replication, colocation), column, colocation, int(shards))
        for oid, method, replication, colocation, column, shards in await _rows(
            connection, _CITUS_TABLES, schema=schema
        )
    }
    found = await _rows(connection, _PROPAGATE_FOR_ROLE, role=app_role) or await _rows(connection, _PROPAGATE_SERVER)
    value, source = found[0] if found else (None, "nowhere")
    return CitusState(
        cluster=True,
        status=f"Citus coordinator with {workers} worker{'' if workers == 1 else 's'}",
        workers=workers,
        tables=tables,
        propagate_set_commands=value,
        propagate_source=source,
    )


async def load_catalog(
    connection: AsyncConnection, roles: AuditRoles, *, schema: str = APP_SCHEMA, allowed_definers: Iterable[str] = ()
) -> Catalog:
    """Read everything the rules need. Runs in the caller's transaction and changes nothing."""
    database, version, version_num = (
        await _rows(
            connection,
            "SELECT current_database()::text, current_setting('server_version'), "
            "current_setting('server_version_num')::int",
        )
    )[0]

    role_by_oid = {row[0]: Role(*row) for row in await _rows(connection, _ROLES)}
    names = {r.name for r in role_by_oid.values()}
    for label, name in (("tenant", roles.tenant), ("app", roles.app), ("owner", roles.owner)):
        if name not in names:
            raise AuditError(
                f"the {label} role {name!r} does not exist on this server (check the TENANTRY_*_ROLE settings)"
            )

    tables: dict[int, Table] = {}
    columns: dict[int, dict[int, Column]] = {}
    for relid, attnum, attname, type_, not_null in await _rows(connection, _COLUMNS, schema=schema):
        columns.setdefault(relid, {})[attnum] = Column(attname, type_, not_null)
    for oid, relname, qualified, enabled, forced in await _rows(connection, _TABLES, schema=schema):
        tables[oid] = Table(oid, qualified, enabled, forced, columns.get(oid, {}), relname in BOOKKEEPING_TABLES)
    if not any(t.is_tenant for t in tables.values()):
        raise AuditError(
            f"schema {schema!r} of database {database!r} has no tenant table (none has a {TENANT_COLUMN} column): "
            "is this the Tenantry database, migrated?"
        )

    policies = [
        Policy(
            name, relid, permissive, _POLICY_COMMANDS[cmd], frozenset(pol_roles), using, check, tuple(rels), tuple(fns)
        )
        for name, relid, permissive, cmd, pol_roles, using, check, rels, fns in await _rows(
            connection, _POLICIES, schema=schema
        )
    ]
    indexes = [
        Index(name, relid, tuple(keys[:nkey]), unique, primary, exclusion, valid, predicate, definition, constraint)
        for name, relid, keys, nkey, unique, primary, exclusion, valid, predicate, definition, constraint in await _rows(
            connection, _INDEXES, schema=schema
        )
    ]
    foreign_keys = [
        ForeignKey(name, relid, ref_relid, ref_name, tuple(keys), tuple(cols), tuple(ref_cols))
        for name, relid, ref_relid, ref_name, keys, cols, ref_cols in await _rows(
            connection, _FOREIGN_KEYS, schema=schema
        )
    ]
    memberships = [
        Membership(*row)
        for row in await _rows(connection, _MEMBERSHIPS_16 if version_num >= 160000 else _MEMBERSHIPS_15)
    ]

    catalog = Catalog(
        database=database,
        server_version=version,
        schema=schema,
        roles=roles,
        tables=tables,
        policies=policies,
        indexes=indexes,
        foreign_keys=foreign_keys,
        role_by_oid=role_by_oid,
        memberships=memberships,
        owned={},
        may_create={},
        definer_functions=[
            DefinerFunction(nsp, name, signature, tuple(config), public)
            for nsp, name, signature, config, public in await _rows(connection, _DEFINER_FUNCTIONS)
        ],
        views=[
            View(oid, name, materialized, tuple(options), frozenset(deps))
            for oid, name, materialized, options, deps in await _rows(connection, _VIEWS)
        ],
        allowed_definers=frozenset(qualify(name, schema) for name in allowed_definers),
        setting_functions=[
            SourceFunction(signature, source, tuple(config))
            for signature, source, config in await _rows(connection, _SETTING_FUNCTIONS, setting=TENANT_SETTING)
        ],
    )
    catalog.setting_defaults = [
        SettingDefault(role, database, entry, server)
        for role, database, entry, server in await _rows(connection, _SETTING_DEFAULTS, setting=TENANT_SETTING)
    ]
    catalog.citus = await load_citus(connection, roles.app, schema)
    catalog.context_functions = [
        ContextFunction(signature, definer, tuple(executors))
        for signature, definer, executors in await _rows(
            connection, _CONTEXT_FUNCTION, schema=schema, name=SET_CONTEXT_FUNCTION
        )
    ]
    serving = catalog.serving_roles()
    for role_name, kind, name in await _rows(connection, _OWNED, names=serving):
        catalog.owned.setdefault(role_name, []).append(f"{kind} {name}")
    for role_name, target in await _rows(connection, _MAY_CREATE, names=serving):
        catalog.may_create.setdefault(role_name, []).append(target)
    return catalog
