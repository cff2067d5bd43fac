"""Reading deparsed policy expressions: the text the audit's P1, P2 and T3 rules judge.

The inputs are what pg_get_expr prints on PostgreSQL 15 and 18 for the policies in question.
"""

from __future__ import annotations

import pytest

from tenantry.tools.catalog_audit.expressions import (
    current_setting_outside_select,
    is_tenant_scoped,
    reads_relations,
    tokens,
)

# policies/*.sql, as deparsed (identical on 15 and 18).
CONTRACT = (
    "(tenant_id = ( SELECT (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid AS \"nullif\"))"
)


def test_tokens_keep_literals_and_quoted_names_whole() -> None:
    assert tokens("(x = 'a FROM b''s' AND \"From\" IS NULL)") == [
        "(",
        "x",
        "=",
        "'a FROM b''s'",
        "and",
        '"From"',
        "is",
        "null",
        ")",
    ]


@pytest.mark.parametrize(
    "expression",
    [
        CONTRACT,
        # the cast applied to the subquery's result
        "(tenant_id = (( SELECT NULLIF(current_setting('app.tenant_id'::text, true), ''::text) AS \"nullif\"))::uuid)",
        # operands the other way round, without nullif and missing_ok
        "(( SELECT (current_setting('app.tenant_id'::text))::uuid AS current_setting) = tenant_id)",
        # AND only narrows
        f"({CONTRACT} AND (deleted_at IS NULL))",
        # scoped, though per row (P1's business, not T3's)
        "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)",
    ],
)
def test_tenant_scoped_expressions(expression: str) -> None:
    assert is_tenant_scoped(expression)


@pytest.mark.parametrize(
    "expression",
    [
        None,
        "true",
        f"({CONTRACT} OR (deleted_at IS NULL))",
        CONTRACT.replace("(tenant_id =", "(id ="),
        CONTRACT.replace("app.tenant_id", "app.user_id"),
        "((tenant_id)::text = current_setting('app.tenant_id'::text, true))",
        "(tenant_id IS NOT NULL)",
        # the setting only inside a string
        "(name = 'tenant_id = current_setting(''app.tenant_id'')')",
    ],
)
def test_expressions_that_do_not_restrict_the_tenant(expression: str | None) -> None:
    assert not is_tenant_scoped(expression)


def test_current_setting_inside_select_is_an_initplan() -> None:
    assert not current_setting_outside_select(CONTRACT)
    assert not current_setting_outside_select("(name <> 'current_setting(x)')")


@pytest.mark.parametrize(
    "expression",
    [
        "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)",
        f"({CONTRACT} AND (owner_id = (current_setting('app.user_id'::text))::uuid))",
        "(pg_catalog.current_setting('app.tenant_id'::text) IS NOT NULL)",
    ],
)
def test_current_setting_outside_select(expression: str) -> None:
    assert current_setting_outside_select(expression)


def test_a_subquery_with_from_reads_relations() -> None:
    assert reads_relations("(EXISTS ( SELECT 1\n   FROM memberships m\n  WHERE (m.tenant_id = products.tenant_id)))")
    assert not reads_relations(CONTRACT)
    assert not reads_relations("(note <> 'from here')")
    assert not reads_relations('("from" IS NOT NULL)')
    assert not reads_relations("(from_date < now())")
