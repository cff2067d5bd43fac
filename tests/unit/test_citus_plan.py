"""db/citus.py without a server: splitting policy files into statements, and the order of distribution."""

from __future__ import annotations

import pytest

from tenantry.db.citus import TablePlan, _in_key_order, split_statements
from tenantry.db.migrate import policy_files


def test_a_semicolon_in_a_string_identifier_comment_or_body_ends_nothing() -> None:
    script = """
    -- a comment; still a comment
    SELECT 'a;b', "odd;name" FROM t; /* block; comment */
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; RETURN 2; END $$;
    DO $body$ BEGIN EXECUTE 'SELECT 1; SELECT 2'; END $body$;
    SELECT 'it''s; fine'
    """
    assert split_statements(script) == [
        "-- a comment; still a comment\n    SELECT 'a;b', \"odd;name\" FROM t",
        "/* block; comment */\n    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; RETURN 2; END $$",
        "DO $body$ BEGIN EXECUTE 'SELECT 1; SELECT 2'; END $body$",
        "SELECT 'it''s; fine'",
    ]


def test_only_comments_is_no_statement() -> None:
    assert split_statements("-- nothing\n/* here */\n;\n") == []


def test_an_unterminated_body_is_an_error() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_statements("CREATE FUNCTION f() AS $$ SELECT 1;")


@pytest.mark.parametrize("path", policy_files(), ids=lambda path: path.name)
def test_every_policy_file_splits_into_whole_statements(path) -> None:  # type: ignore[no-untyped-def]
    statements = split_statements(path.read_text(encoding="utf-8"))
    assert statements
    for statement in statements:
        assert statement.count("$$") % 2 == 0, statement


def test_referenced_tables_are_distributed_first() -> None:
    plans = [TablePlan("orders", True), TablePlan("workspaces", False), TablePlan("products", True)]
    keys = [("orders", "products"), ("orders", "workspaces"), ("products", "workspaces")]
    assert [plan.name for plan in _in_key_order(plans, keys)] == ["workspaces", "products", "orders"]
