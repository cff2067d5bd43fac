"""Citus: what `tenantry db upgrade` does when the database is the coordinator of a cluster.

On a database where the operator has created the `citus` extension and registered workers
(docs/scale-out.md), every tenant table is distributed by its tenant column, all of them in one
colocation group, so a workspace's rows of every table live in the same shard group and the
composite keys `(tenant_id, ...)` are checked on one node; every other table of the schema
(workspaces, users, the platform tables) becomes a reference table, copied to every node, so tenant
tables may keep their keys to it. Tables only the migrations read stay on the coordinator, and so
does the token directory, as a Citus local table (read and written by the coordinator only).
On plain PostgreSQL, or with no worker registered, nothing here changes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

TENANT_COLUMN = "tenant_id"
# Plain tables of the coordinator, never in Citus's metadata: the migrations' bookkeeping, and the
# password-login and leak-report throttle (users/throttle.py), whose upsert computes now() in its
# ON CONFLICT DO UPDATE, which Citus refuses on every table it manages, reference and Citus local
# alike ("functions used in the DO UPDATE SET clause of INSERTs on distributed tables must be
# marked IMMUTABLE"). Only the API, through the coordinator, uses it.
COORDINATOR_ONLY = frozenset({"alembic_version", "tenantry_policy_checksums", "auth_throttle"})
# Global tables read and written on the coordinator only, before the tenant is known: Citus local
# tables (`citus_add_local_table_to_metadata`), so a transaction that writes one and a worker's
# shard commits both with two-phase commit, which a plain table would not get. The token directory
# (migration 0012): a reference table would make every new token a two-phase write to every node; here it is one local row, in the transaction that writes the token on its
# worker (docs/scale-out.md, "The token lookup before the tenant is known").
COORDINATOR_LOCAL = frozenset({"token_directory"})


def has_citus(connection: Connection) -> bool:
    """The citus extension exists in this database."""
    return bool(connection.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar())


def has_workers(connection: Connection) -> bool:
    """At least one active primary worker is registered (group 0 is the coordinator)."""
    return bool(
        connection.execute(
            text("SELECT EXISTS (SELECT 1 FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' AND isactive)")
        ).scalar()
    )


def is_cluster(connection: Connection) -> bool:
    """A Citus coordinator with workers: the database `db upgrade` distributes."""
    return has_citus(connection) and has_workers(connection)


# --- one statement at a time -----------------------------------------------------------------------

# Single-quoted strings, quoted identifiers, comments and dollar-quoted bodies, in which a `;` does
# not end a statement; anything else up to the next `;`.
_TOKEN = re.compile(
    r"""
      (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
    | '(?:[^']|'')*'
    | "(?:[^"]|"")*"
    | --[^\n]*
    | /\*.*?\*/
    | (?P<end>;)
    """,
    re.VERBOSE | re.DOTALL,
)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into its statements (without the `;`), dropping empty ones.

    Citus refuses DDL on a distributed table sent as several statements in one query string, so
    a policy file is run statement by statement (db/migrate.py). Knows enough SQL for ours:
    quotes, quoted identifiers, comments and `$tag$` bodies (a `;` inside them ends nothing).
    """
    statements: list[str] = []
    start = 0
    position = 0
    while True:
        match = _TOKEN.search(script, position)
        if match is None:
            break
        if match.group("end"):
            statements.append(script[start : match.start()])
            start = position = match.end()
        elif match.group("dollar"):
            closing = script.find(match.group("dollar"), match.end())
            if closing < 0:
                raise ValueError(f"unterminated {match.group('dollar')} body in a SQL script")
            position = closing + len(match.group("dollar"))
        else:
            position = match.end()
    statements.append(script[start:])
    return [statement.strip() for statement in statements if _has_code(statement)]


def _has_code(statement: str) -> bool:
    """Something other than white space and comments."""
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.DOTALL)
    return bool(without_comments.strip())


# --- distribution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TablePlan:
    name: str
    tenant: bool  # distributed by TENANT_COLUMN; otherwise a reference table (or, if local, ...)
    local: bool = False  # a Citus local table on the coordinator (COORDINATOR_LOCAL)


_TABLES = text(
    """
    SELECT c.relname,
           EXISTS (SELECT 1 FROM pg_attribute AS a
                    WHERE a.attrelid = c.oid AND a.attname = :column AND NOT a.attisdropped) AS tenant,
           p.partmethod, p.autoconverted
      FROM pg_class AS c
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      LEFT JOIN pg_dist_partition AS p ON p.logicalrelid = c.oid
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
     ORDER BY c.relname
    """
)

# Foreign keys between tables of the schema: (referencing, referenced).
_KEYS = text(
    """
    SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
      FROM pg_constraint AS c
      JOIN pg_class AS t ON t.oid = c.conrelid
      JOIN pg_namespace AS n ON n.oid = t.relnamespace
     WHERE c.contype = 'f' AND n.nspname = 'public' AND c.conrelid <> c.confrelid
    """
)


def _in_key_order(plans: list[TablePlan], keys: list[tuple[str, str]]) -> list[TablePlan]:
    """Referenced tables first: Citus distributes a table only after the tables its keys point at."""
    by_name = {plan.name: plan for plan in plans}
    ordered: list[TablePlan] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name not in by_name:
            return
        if name in visiting:
            raise ValueError(f"foreign keys form a cycle through {name}")
        visiting.add(name)
        for referencing, referenced in keys:
            if referencing == name:
                visit(referenced)
        visiting.discard(name)
        done.add(name)
        ordered.append(by_name[name])

    for plan in plans:
        visit(plan.name)
    return ordered


def pending_tables(connection: Connection) -> list[TablePlan]:
    """The tables of the schema that are not distributed yet, referenced tables first."""
    plans: list[TablePlan] = []
    for name, tenant, method, autoconverted in connection.execute(_TABLES, {"column": TENANT_COLUMN}):
        if name in COORDINATOR_ONLY:
            continue
        if name in COORDINATOR_LOCAL:
            # Citus turns a table with a key to a reference table into a Citus local table by itself
            # ("autoconverted", which it may undo); the upgrade makes such a table explicit too.
            if method is None or autoconverted:
                plans.append(TablePlan(name=name, tenant=False, local=True))
            continue
        if method is not None:
            continue
        plans.append(TablePlan(name=name, tenant=bool(tenant)))
    keys = [(str(a).removeprefix("public."), str(b).removeprefix("public.")) for a, b in connection.execute(_KEYS)]
    return _in_key_order(plans, keys)


def _colocation_anchor(connection: Connection) -> str | None:
    """A tenant table that is already distributed: every new one joins its colocation group."""
    return connection.execute(
        text(
            "SELECT p.logicalrelid::regclass::text FROM pg_dist_partition AS p "
            "WHERE p.partmethod = 'h' AND p.logicalrelid::regclass::text NOT LIKE 'pg_%' "
            "ORDER BY p.logicalrelid::regclass::text LIMIT 1"
        )
    ).scalar()


# The foreign keys that touch a table not distributed yet, with their definitions.
_PENDING_KEYS = text(
    """
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
      FROM pg_constraint AS c
      JOIN pg_class AS t ON t.oid = c.conrelid
      JOIN pg_namespace AS n ON n.oid = t.relnamespace
     WHERE c.contype = 'f' AND n.nspname = 'public'
       AND (NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p WHERE p.logicalrelid = c.conrelid)
            OR NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p WHERE p.logicalrelid = c.confrelid))
     ORDER BY 1, 2
    """
)


def distribute(connection: Connection) -> list[str]:
    """Distribute what is not distributed yet; returns what it did (nothing on a second run).

    Runs in the upgrade's transaction, as the owner role, after the policies: Citus copies each
    table's policies, grants and triggers to its shards. Each call is one statement.

    Citus refuses a key between a distributed table and a local one, and turning one table of a
    graph of keys into a reference table turns all the others into "Citus local" tables. So the
    keys that touch a table still to distribute are dropped first and added back, with the same
    names and definitions, once every table is distributed: the transaction never commits
    without them.
    """
    if not is_cluster(connection):
        return []
    plans = pending_tables(connection)
    # A coordinator-only table an earlier version made a reference table goes back to plain.
    managed = [
        str(name)
        for name in connection.execute(
            text(
                "SELECT c.relname FROM pg_dist_partition AS p JOIN pg_class AS c ON c.oid = p.logicalrelid "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relname = ANY(:names) ORDER BY 1"
            ),
            {"names": sorted(COORDINATOR_ONLY)},
        ).scalars()
    ]
    if not plans and not managed:
        return []
    done: list[str] = []
    for name in managed:
        connection.execute(text("SELECT undistribute_table(CAST(:t AS regclass))"), {"t": f"public.{name}"})
        done.append(f"{name}: coordinator-only table")
    keys = [(str(table), str(name), str(definition)) for table, name, definition in connection.execute(_PENDING_KEYS)]
    for table, name, _ in keys:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    # The auth-change triggers (policies/20_auth_change_notify.sql) go to the shards with their
    # tables; docs/scale-out.md says what their notifications reach there.
    connection.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
    # Reference tables with keys between them, made in one transaction: Citus wants one connection
    # per node for that.
    connection.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    anchor = _colocation_anchor(connection)
    for plan in plans:
        if plan.tenant:
            connection.execute(
                text("SELECT create_distributed_table(CAST(:t AS regclass), :c, colocate_with => :w)"),
                {"t": f"public.{plan.name}", "c": TENANT_COLUMN, "w": anchor or "default"},
            )
            anchor = anchor or f"public.{plan.name}"
            done.append(f"{plan.name}: distributed by {TENANT_COLUMN}")
        elif plan.local:
            connection.execute(
                text("SELECT citus_add_local_table_to_metadata(CAST(:t AS regclass))"), {"t": f"public.{plan.name}"}
            )
            done.append(f"{plan.name}: coordinator-local table")
        else:
            connection.execute(
                text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": f"public.{plan.name}"}
            )
            done.append(f"{plan.name}: reference table")
    # A key Citus refuses (ON DELETE SET NULL on the tenant column: migration 0009) fails the
    # upgrade here, and the whole transaction rolls back.
    for table, name, definition in keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    return done


# --- operations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    table: str
    shard_id: int
    node: str


class NotACluster(RuntimeError):
    """The database is not a Citus coordinator with workers."""


TRANSFER_MODES = ("auto", "force_logical", "block_writes")


def isolate_tenant(connection: Connection, tenant_id: str, transfer_mode: str = "auto") -> list[Placement]:
    """Give one workspace shards of its own in every tenant table (`isolate_tenant_to_new_shard`
    with CASCADE, so its colocated tables follow) and say where they are. Idempotent: a workspace
    already alone in its shard is left as it is. Run outside a transaction block (autocommit):
    Citus splits the shard with a transaction of its own. `transfer_mode`: Citus's
    shard_transfer_mode ("block_writes" needs no logical replication but blocks writes to the
    shard while it is split). docs/scale-out.md: moving it to a node.
    """
    if transfer_mode not in TRANSFER_MODES:
        raise ValueError(f"transfer mode must be one of {', '.join(TRANSFER_MODES)}")
    if not is_cluster(connection):
        raise NotACluster("this database is not a Citus coordinator with workers (docs/scale-out.md)")
    anchor = _colocation_anchor(connection)
    if anchor is None:
        raise NotACluster("no table is distributed yet: run `tenantry db upgrade` first")
    shard = connection.execute(
        text("SELECT get_shard_id_for_distribution_column(CAST(:t AS regclass), CAST(:v AS uuid))"),
        {"t": anchor, "v": tenant_id},
    ).scalar_one()
    bounds = connection.execute(
        text("SELECT shardminvalue::bigint, shardmaxvalue::bigint FROM pg_dist_shard WHERE shardid = :s"),
        {"s": shard},
    ).one()
    if bounds[0] != bounds[1]:
        connection.execute(
            text(
                "SELECT isolate_tenant_to_new_shard(CAST(:t AS regclass), CAST(:v AS uuid), 'CASCADE', "
                "shard_transfer_mode => CAST(:m AS citus.shard_transfer_mode))"
            ),
            {"t": anchor, "v": tenant_id, "m": transfer_mode},
        )
    return placements_of(connection, tenant_id)


def placements_of(connection: Connection, tenant_id: str) -> list[Placement]:
    """Where one workspace's rows live: each tenant table's shard and its node."""
    rows = connection.execute(
        text(
            """
            SELECT p.logicalrelid::regclass::text AS table_name, s.shardid, s.nodename || ':' || s.nodeport AS node
              FROM pg_dist_partition AS p
              JOIN citus_shards AS s
                ON s.table_name = p.logicalrelid
               AND s.shardid = get_shard_id_for_distribution_column(p.logicalrelid, CAST(:v AS uuid))
             WHERE p.partmethod = 'h'
             ORDER BY 1
            """
        ),
        {"v": tenant_id},
    )
    return [Placement(table=str(t), shard_id=int(s), node=str(n)) for t, s, n in rows]
