"""Reading deparsed policy expressions: the text the audit's P1, P2 and T3 rules judge.

The inputs are what pg_get_expr prints on PostgreSQL 15 and 18 for the policies in question.
"""

from __future__ import annotations

import pytest

from tenantry.tools.catalog_audit.expressions import (
    has_subquery,
    is_tenant_scoped,
    reads_relations,
    tokens,
)

# policies/*.sql, as deparsed (identical on 15 and 18), public being on the search_path.
CONTRACT = "(tenant_id = tenantry_current_tenant())"
# The form before migration 0008, which Citus refuses: a subquery.
INITPLAN = (
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
        "(tenant_id = public.tenantry_current_tenant())",
        "(public.tenantry_current_tenant() = tenant_id)",
        INITPLAN,
        # the cast applied to the subquery's result
        "(tenant_id = (( SELECT NULLIF(current_setting('app.tenant_id'::text, true), ''::text) AS \"nullif\"))::uuid)",
        # operands the other way round, without nullif and missing_ok
        "(( SELECT (current_setting('app.tenant_id'::text))::uuid AS current_setting) = tenant_id)",
        # AND only narrows
        f"({CONTRACT} AND (deleted_at IS NULL))",
        # the bare expression, which the function is inlined into
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
        INITPLAN.replace("(tenant_id =", "(id ="),
        INITPLAN.replace("app.tenant_id", "app.user_id"),
        "(tenant_id = other_tenant())",
        "(tenant_id = tenantry_current_tenant(id))",
        "((tenant_id)::text = current_setting('app.tenant_id'::text, true))",
        "(tenant_id IS NOT NULL)",
        # the setting only inside a string
        "(name = 'tenant_id = current_setting(''app.tenant_id'')')",
    ],
)
def test_expressions_that_do_not_restrict_the_tenant(expression: str | None) -> None:
    assert not is_tenant_scoped(expression)


def test_the_contract_holds_no_subquery() -> None:
    assert not has_subquery(CONTRACT)
    assert not has_subquery("(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)")
    assert not has_subquery("(name <> '( SELECT 1)')")


@pytest.mark.parametrize(
    "expression",
    [
        INITPLAN,
        f"({CONTRACT} AND (owner_id = ( SELECT (current_setting('app.user_id'::text))::uuid AS current_setting)))",
        "(EXISTS ( SELECT 1\n   FROM memberships m\n  WHERE (m.tenant_id = products.tenant_id)))",
    ],
)
def test_subqueries(expression: str) -> None:
    assert has_subquery(expression)


def test_a_subquery_with_from_reads_relations() -> None:
    assert reads_relations("(EXISTS ( SELECT 1\n   FROM memberships m\n  WHERE (m.tenant_id = products.tenant_id)))")
    assert not reads_relations(CONTRACT)
    assert not reads_relations("(note <> 'from here')")
    assert not reads_relations('("from" IS NOT NULL)')
    assert not reads_relations("(from_date < now())")
