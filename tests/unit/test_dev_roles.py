"""`tenantry dev` against a server you already have names its roles after the database, so it
never resets the password of another deployment's `tenantry_app` (roles are server-wide)."""

from __future__ import annotations

import pytest

from tenantry.settings import SettingsError
from tenantry.tools.devserver import ROLE_VARIABLES, deployment_roles


def test_roles_are_named_after_the_database() -> None:
    roles = deployment_roles("postgresql://postgres@db:5432/tenantry_dev", {})
    assert roles == {
        "TENANTRY_OWNER_ROLE": "tenantry_dev_owner",
        "TENANTRY_TENANT_ROLE": "tenantry_dev_tenant",
        "TENANTRY_PLATFORM_ROLE": "tenantry_dev_platform",
        "TENANTRY_APP_ROLE": "tenantry_dev_app",
    }
    assert "tenantry_app" not in roles.values()


def test_role_names_that_were_given_are_kept() -> None:
    given = {variable: f"mine_{n}" for n, variable in enumerate(ROLE_VARIABLES)}
    assert deployment_roles("postgresql://postgres@db/tenantry_dev", given) == {}


@pytest.mark.parametrize("database", ["Mixed", "a" * 60, ""])
def test_a_database_name_that_cannot_name_roles_is_refused_clearly(database: str) -> None:
    with pytest.raises(SettingsError, match="TENANTRY_OWNER_ROLE"):
        deployment_roles(f"postgresql://postgres@db/{database}", {})
