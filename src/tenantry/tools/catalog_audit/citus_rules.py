"""Rules on how the tables are distributed on a Citus cluster (C1-C4), as `tenantry db upgrade`
distributes them (db/citus.py, docs/scale-out.md).

They run only on a Citus coordinator with workers; on plain PostgreSQL, or with the extension but
no worker, they report nothing and the report says why (`CitusState.status`). The other half of
Citus's contract is checked on every backend by the rules that exist already: no subquery in a
policy (P1, P2), one function that sets the tenant (F4, F5), no default tenant (F6), keys led by
the tenant column (K1, K2), no global table referencing a tenant table (G1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from tenantry.db.citus import COORDINATOR_LOCAL, COORDINATOR_ONLY
from tenantry.tools.catalog_audit.catalog import TENANT_COLUMN, Catalog, Table
from tenantry.tools.catalog_audit.findings import Issue, rule

PROPAGATE_SETTING = "citus.propagate_set_commands"


def _bare(table: Table) -> str:
    return table.name.rsplit(".", 1)[-1].strip('"')


@rule("C1", "high", "tenant table not distributed by its tenant column")
def distributed_by_tenant(catalog: Catalog) -> Iterator[Issue]:
    """On a cluster every tenant table is hash-distributed by tenant_id. A table left on the
    coordinator (local or Citus local) puts every workspace's rows on one node, a reference table
    copies them to every node, and a table distributed by another column scatters one workspace's
    rows over all shards: its keys `(tenant_id, ...)` can no longer be checked on one shard, and
    joins with the other tenant tables and one tenant's statements stop being router queries."""
    if not catalog.citus.cluster:
        return
    for table in catalog.tenant_tables:
        placed = catalog.citus.of(table)
        if placed.kind == "distributed" and placed.column == TENANT_COLUMN:
            continue
        yield Issue(
            table.name,
            f"is {placed.describe()}, not distributed by {TENANT_COLUMN}",
            ("" if placed.kind == "local" else f"SELECT undistribute_table('{table.name}'); then ")
            + f"run `tenantry db upgrade` (create_distributed_table('{table.name}', '{TENANT_COLUMN}', "
            "colocate_with => <a tenant table>))",
        )


@rule("C2", "high", "tenant tables not all in one colocation group")
def one_colocation_group(catalog: Catalog) -> Iterator[Issue]:
    """Colocated tables keep the same tenant's rows in shards of the same hash range on the same
    node, so a workspace's rows of every table live together: the composite foreign keys are
    checked on one node, joins between tenant tables run on one shard, and isolating a workspace
    (`isolate_tenant_to_new_shard ... CASCADE`) moves all its tables at once. A table in another
    group breaks each of these. The group holding most tenant tables is taken as the right one;
    every distributed tenant table outside it is reported (C1 reports the undistributed ones)."""
    if not catalog.citus.cluster:
        return
    distributed = [(t, p) for t in catalog.tenant_tables if (p := catalog.citus.of(t)).kind == "distributed"]
    groups = Counter(placed.colocation_id for _, placed in distributed)
    if len(groups) < 2:
        return
    # Most tables first; on a tie the group of the first table by name, as db/citus.py anchors it.
    order = [placed.colocation_id for _, placed in distributed]
    main = max(groups, key=lambda group: (groups[group], -order.index(group)))
    anchor = next(table.name for table, placed in distributed if placed.colocation_id == main)
    for table in catalog.tenant_tables:
        placed = catalog.citus.of(table)
        if placed.kind == "distributed" and placed.colocation_id != main:
            yield Issue(
                table.name,
                f"is in colocation group {placed.colocation_id}; the other tenant tables are in group {main} "
                f"({anchor} among them)",
                f"SELECT update_distributed_table_colocation('{table.name}', colocate_with => '{anchor}');",
            )


@rule("C3", "high", "global table not placed as db upgrade places it")
def global_tables_are_reference(catalog: Catalog) -> Iterator[Issue]:
    """Global tables (workspaces, users, plans, the platform tables) are reference tables, a copy
    on every node: tenant tables keep their foreign keys to them and join them on the worker.
    The exceptions are named in db/citus.py: COORDINATOR_ONLY tables (the migrations'
    bookkeeping, the login throttle) stay plain coordinator tables, and COORDINATOR_LOCAL ones
    (the token directory) are Citus local tables. A global table left local cannot be referenced
    by a distributed table; one distributed by hash spreads rows every workspace reads over all
    shards; a token directory copied to every node makes each new token a write to every node."""
    if not catalog.citus.cluster:
        return
    for table in sorted(catalog.tables.values(), key=lambda t: t.name):
        if table.is_tenant:
            continue
        name = _bare(table)
        placed = catalog.citus.of(table)
        if name in COORDINATOR_ONLY:
            if placed.kind != "local":
                yield Issue(
                    table.name,
                    f"is {placed.describe()}: it belongs on the coordinator only, outside Citus's metadata",
                    f"SELECT undistribute_table('{table.name}');",
                )
        elif name in COORDINATOR_LOCAL:
            if placed.kind != "citus local":
                yield Issue(
                    table.name,
                    f"is {placed.describe()}, not a Citus local table on the coordinator",
                    ("" if placed.kind == "local" else f"SELECT undistribute_table('{table.name}'); ")
                    + f"SELECT citus_add_local_table_to_metadata('{table.name}'); (or run `tenantry db upgrade`)",
                )
        elif not table.bookkeeping and placed.kind != "reference":
            yield Issue(
                table.name,
                f"is {placed.describe()}, not a reference table",
                ("" if placed.kind == "local" else f"SELECT undistribute_table('{table.name}'); ")
                + f"SELECT create_reference_table('{table.name}'); (or run `tenantry db upgrade`)",
            )


@rule("C4", "high", "the login role's SET LOCAL does not reach the workers")
def set_local_reaches_the_workers(catalog: Catalog) -> Iterator[Issue]:
    """The tenant context is set with SET LOCAL (tenantry_set_context); Citus sends SET LOCAL to
    the workers only with citus.propagate_set_commands = 'local'. Without it the workers see no
    tenant: every read there finds nothing and every write is refused, so the API fails closed and
    does not work. `tenantry db upgrade` sets it for the app login role in the database; the value
    is read as the login role gets it (ALTER ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE,
    then the server's)."""
    citus = catalog.citus
    if not citus.cluster or citus.propagate_set_commands == "local":
        return
    app = catalog.roles.app
    yield Issue(
        f"role {app}",
        f"{PROPAGATE_SETTING} is {citus.propagate_set_commands or 'unset'} (from {citus.propagate_source}) "
        "for the login role here, so the tenant context stays on the coordinator",
        f'ALTER ROLE "{app}" IN DATABASE "{catalog.database}" SET {PROPAGATE_SETTING} = local; '
        "(or run `tenantry db upgrade`)",
    )


RULES = (distributed_by_tenant, one_colocation_group, global_tables_are_reference, set_local_reaches_the_workers)
