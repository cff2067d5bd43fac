"""Schema: declarative base, migrations runner, roles, repeatable policies."""
