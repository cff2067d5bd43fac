"""The database roles of docs/04-security-model.md, created and corrected idempotently on every upgrade.

- owner: owns the schema objects and runs migrations (NOLOGIN; the migrating account becomes it);
- tenant: RLS-bound DML on tenant tables only (NOLOGIN);
- platform: the control plane (NOLOGIN);
- app: the only login role the API uses; NOINHERIT, so on its own it can do nothing but call the
  token resolver, and it becomes tenant or platform per transaction with SET LOCAL ROLE.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tenantry.settings import Settings

_SAFE = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_ATTRIBUTES = {
    "rolsuper": "SUPERUSER",
    "rolcreatedb": "CREATEDB",
    "rolcreaterole": "CREATEROLE",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
    "rolinherit": "INHERIT",
    "rolcanlogin": "LOGIN",
}


def _ensure_role(connection: Connection, name: str, attributes: str) -> None:
    """Create the role, or correct only the attributes that drifted.

    Correcting only what differs keeps re-runs possible for a CREATEROLE (non-superuser) migrator,
    which may not restate SUPERUSER, REPLICATION or BYPASSRLS even to turn them off; drift on those
    (someone granting BYPASSRLS by hand) then fails loudly instead of being ignored.
    """
    row = (
        connection.execute(text(f"SELECT {', '.join(_ATTRIBUTES)} FROM pg_roles WHERE rolname = :n"), {"n": name})
        .mappings()
        .first()
    )
    if row is None:
        connection.execute(text(f'CREATE ROLE "{name}" {attributes}'))
        return
    wanted = set(attributes.split())
    drifted = [
        keyword if keyword in wanted else f"NO{keyword}"
        for column, keyword in _ATTRIBUTES.items()
        if row[column] != (keyword in wanted)
    ]
    if drifted:
        connection.execute(text(f'ALTER ROLE "{name}" {" ".join(drifted)}'))


def _switched_role_login(connection: Connection) -> str:
    """LOGIN for the roles a transaction switches to, on Citus only; NOLOGIN elsewhere.

    Citus opens its connections to the workers as the current role, after SET ROLE, so the owner,
    tenant and platform roles must be able to log in there. They get no password: a client can log
    in as them only where pg_hba.conf trusts it, and the coordinator authenticates to the workers
    through pg_dist_authinfo or certificates (docs/scale-out.md).
    """
    citus = connection.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar()
    return "LOGIN" if citus else "NOLOGIN"


def ensure_roles(connection: Connection, settings: Settings) -> None:
    """Create or correct the four roles and their memberships. Needs CREATEROLE or superuser."""
    # Roles are cluster-wide; serialize concurrent upgrades of different databases on one server.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('tenantry.roles'))"))
    switched = _switched_role_login(connection)
    _ensure_role(connection, settings.owner_role, f"{switched} NOINHERIT {_SAFE}")
    _ensure_role(connection, settings.tenant_role, f"{switched} NOINHERIT {_SAFE}")
    _ensure_role(connection, settings.platform_role, f"{switched} NOINHERIT {_SAFE}")
    _ensure_role(connection, settings.app_role, f"LOGIN NOINHERIT {_SAFE}")
    if settings.app_password:
        statement = connection.execute(
            text("SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:r AS text), CAST(:p AS text))"),
            {"r": settings.app_role, "p": settings.app_password},
        ).scalar_one()
        connection.execute(text(statement))
    connection.execute(text(f'GRANT "{settings.tenant_role}", "{settings.platform_role}" TO "{settings.app_role}"'))
    is_superuser = connection.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    if not is_superuser:
        connection.execute(text(f'GRANT "{settings.owner_role}" TO current_user'))
    connection.execute(text(f'GRANT USAGE, CREATE ON SCHEMA public TO "{settings.owner_role}"'))
    _propagate_set_local(connection, settings)


def _propagate_set_local(connection: Connection, settings: Settings) -> None:
    """On Citus, have the login role's `SET LOCAL` reach the workers (docs/03-architecture.md).

    The tenant context is set with `SET LOCAL` (tenantry_set_context, migration 0008); Citus sends
    those to the workers a transaction touches only with `citus.propagate_set_commands = 'local'`.
    Set for the login role in this database, only where the citus extension exists: elsewhere the
    setting would name an extension the server may not even have.
    """
    has_citus = connection.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar()
    if has_citus:
        statement = connection.execute(
            text(
                "SELECT format('ALTER ROLE %I IN DATABASE %I SET citus.propagate_set_commands = local', "
                "CAST(:r AS text), current_database())"
            ),
            {"r": settings.app_role},
        ).scalar_one()
        connection.execute(text(statement))
