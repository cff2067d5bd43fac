"""The snapshot of the catalog that the rules check: tables, policies, keys, roles, functions, views.

queries.py fills it from the live database; the rules only read it, so they are plain functions
of this snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tenantry.settings import Settings

APP_SCHEMA = "public"
TENANT_COLUMN = "tenant_id"
# Tables of the schema machinery, neither tenant nor global data.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "tenantry_policy_checksums"})
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_PLAIN_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")


class AuditError(Exception):
    """The audit cannot run against this database (missing role, no tenant table...)."""


@dataclass(frozen=True)
class AuditRoles:
    """The role names the audit checks, as the service is configured to use them."""

    tenant: str
    app: str
    owner: str

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditRoles:
        return cls(tenant=settings.tenant_role, app=settings.app_role, owner=settings.owner_role)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool


@dataclass(frozen=True)
class Table:
    oid: int
    name: str  # schema-qualified and quoted where needed, ready for a fix statement
    rls_enabled: bool
    rls_forced: bool
    columns: Mapping[int, Column]
    bookkeeping: bool = False

    @property
    def tenant_attnum(self) -> int | None:
        return next((n for n, c in self.columns.items() if c.name == TENANT_COLUMN), None)

    @property
    def is_tenant(self) -> bool:
        return self.tenant_attnum is not None

    def column_names(self, attnums: Iterable[int]) -> list[str]:
        return [self.columns[n].name if n in self.columns else "<expression>" for n in attnums]


@dataclass(frozen=True)
class Policy:
    name: str
    table_oid: int
    permissive: bool
    command: str  # ALL, SELECT, INSERT, UPDATE or DELETE
    roles: frozenset[str]  # role names; "public" for PUBLIC
    using: str | None  # deparsed, as pg_get_expr prints it
    with_check: str | None
    relations: tuple[str, ...]  # other relations the expressions depend on (pg_depend)
    functions: tuple[str, ...]  # non-built-in functions they call (pg_depend)


@dataclass(frozen=True)
class Index:
    name: str
    table_oid: int
    keys: tuple[int, ...]  # key columns (INCLUDE columns left out); 0 is an expression
    unique: bool
    primary: bool
    exclusion: bool
    valid: bool
    predicate: str | None
    definition: str
    constraint: str | None  # the PRIMARY KEY / UNIQUE / EXCLUDE constraint it backs, if any


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table_oid: int
    ref_table_oid: int
    ref_table_name: str
    columns: tuple[int, ...]
    column_names: tuple[str, ...]
    ref_column_names: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    oid: int
    name: str
    superuser: bool
    bypassrls: bool


@dataclass(frozen=True)
class Membership:
    member: int
    role: int
    inherit: bool  # the member has the role's privileges without SET ROLE
    set: bool  # the member may SET ROLE to it


@dataclass(frozen=True)
class DefinerFunction:
    schema: str
    name: str
    signature: str
    config: tuple[str, ...]
    public_execute: bool


@dataclass(frozen=True)
class SourceFunction:
    """A function (any security) whose source or SET clauses name the tenant setting."""

    signature: str  # schema-qualified, with its argument types
    source: str  # prosrc: the body of a SQL or plpgsql function
    config: tuple[str, ...]  # its SET clauses, "name=value"


@dataclass(frozen=True)
class ContextFunction:
    """The one function that sets the tenant (tenancy/session.py names it), as the catalog has it."""

    signature: str
    security_definer: bool
    executors: tuple[str, ...]  # roles other than the owner that may EXECUTE it ("public" for PUBLIC)


@dataclass(frozen=True)
class View:
    oid: int
    name: str
    materialized: bool
    options: tuple[str, ...]
    depends_on: frozenset[int]


@dataclass(frozen=True)
class Distribution:
    """Where Citus keeps one table (pg_dist_partition); a table Citus does not know is "local"."""

    kind: str  # "distributed", "reference", "citus local", "single shard", "append", "range" or "local"
    column: str | None = None  # the distribution column of a distributed table
    colocation_id: int | None = None  # 0 or None: in no colocation group
    shards: int = 0

    def describe(self) -> str:
        if self.kind == "distributed":
            return f"distributed by {self.column}, colocation group {self.colocation_id}, {self.shards} shards"
        if self.kind == "reference":
            return "reference table (a copy on every node)"
        if self.kind == "local":
            return "coordinator-local (not distributed)"
        if self.kind == "citus local":
            return "Citus local table on the coordinator (not distributed)"
        column = f" by {self.column}" if self.column else ""
        return f"{self.kind}{column}, colocation group {self.colocation_id}, {self.shards} shards"


LOCAL = Distribution("local")


@dataclass(frozen=True)
class CitusState:
    """What the audit knows of Citus in this database. The Citus rules (C1-C4) run only when
    `cluster` is true: a coordinator with workers, the database `tenantry db upgrade` distributes."""

    cluster: bool = False
    status: str = "not a Citus cluster (no citus extension in this database)"
    workers: int = 0
    tables: Mapping[int, Distribution] = field(default_factory=dict)  # by table oid; absent: local
    # citus.propagate_set_commands as the app login role gets it in this database, and from where.
    propagate_set_commands: str | None = None
    propagate_source: str = ""

    def of(self, table: Table) -> Distribution:
        return self.tables.get(table.oid, LOCAL)


@dataclass(frozen=True)
class SettingDefault:
    """A value for the tenant setting given outside a transaction: ALTER ROLE / DATABASE ... SET
    (pg_db_role_setting), or the server's configuration (`server` names where from)."""

    role: str | None  # None: every role
    database: str | None  # None: every database
    entry: str  # "<setting>=<value>", as pg_db_role_setting holds it
    server: str | None = None  # "configuration file", "command line"...: not from pg_db_role_setting

    @property
    def target(self) -> str:
        if self.server:
            return f"the server configuration ({self.server})"
        role = f"role {quote_ident(self.role)}" if self.role else "every role"
        return f"{role} in {f'database {quote_ident(self.database)}' if self.database else 'every database'}"

    def reset(self, setting: str) -> str:
        """The statement that removes it."""
        if self.server:
            return f"remove {setting} from the server's {self.server}, then reload;"
        if self.role is None:
            return f"ALTER DATABASE {quote_ident(self.database or '')} RESET {setting};"
        scope = f" IN DATABASE {quote_ident(self.database)}" if self.database else ""
        return f"ALTER ROLE {quote_ident(self.role)}{scope} RESET {setting};"


@dataclass
class Catalog:
    database: str
    server_version: str
    schema: str
    roles: AuditRoles
    tables: dict[int, Table]
    policies: list[Policy]
    indexes: list[Index]
    foreign_keys: list[ForeignKey]
    role_by_oid: dict[int, Role]
    memberships: list[Membership]
    owned: dict[str, list[str]]  # role -> "table public.x", "function public.f()", ...
    may_create: dict[str, list[str]]  # role -> schemas it may CREATE in ("database x" for CREATE on it)
    definer_functions: list[DefinerFunction]
    views: list[View]
    allowed_definers: frozenset[str] = field(default_factory=frozenset)
    # Functions that mention the tenant setting, and those named as the one that may set it
    # (exactly one when the schema is as migrated).
    setting_functions: list[SourceFunction] = field(default_factory=list)
    context_functions: list[ContextFunction] = field(default_factory=list)
    setting_defaults: list[SettingDefault] = field(default_factory=list)
    citus: CitusState = field(default_factory=CitusState)

    @property
    def tenant_tables(self) -> list[Table]:
        return sorted((t for t in self.tables.values() if t.is_tenant), key=lambda t: t.name)

    @property
    def global_tables(self) -> list[Table]:
        return sorted((t for t in self.tables.values() if not t.is_tenant and not t.bookkeeping), key=lambda t: t.name)

    def role(self, name: str) -> Role:
        return next(r for r in self.role_by_oid.values() if r.name == name)

    def reachable(self, name: str, *, via: str) -> list[Role]:
        """Roles `name` can SET ROLE to (via="set") or whose privileges it has (via="inherit")."""
        start = self.role(name).oid
        seen: set[int] = set()
        frontier = [start]
        while frontier:
            member = frontier.pop()
            for edge in self.memberships:
                if edge.member == member and getattr(edge, via) and edge.role not in seen and edge.role != start:
                    seen.add(edge.role)
                    frontier.append(edge.role)
        return sorted((self.role_by_oid[oid] for oid in seen if oid in self.role_by_oid), key=lambda r: r.name)

    def serving_roles(self) -> list[str]:
        """The tenant and app roles and every role they can become, except the owner (rule R5's case).

        Requests run as these: whatever they may do, a request (or an injected statement) may do.
        """
        names = {self.roles.tenant, self.roles.app}
        for start in (self.roles.tenant, self.roles.app):
            names.update(r.name for r in self.reachable(start, via="set"))
            names.update(r.name for r in self.reachable(start, via="inherit"))
        names.discard(self.roles.owner)
        return sorted(names)


def quote_ident(name: str) -> str:
    """Quote an identifier for a fix statement, the way format('%I') would."""
    return name if _PLAIN_IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'


def qualify(function_name: str, schema: str) -> str:
    """`resolve_token` -> `public.resolve_token`; an already qualified name stays as it is."""
    return function_name if "." in function_name else f"{schema}.{function_name}"
