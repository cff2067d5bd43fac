"""Reading policy expressions as PostgreSQL deparses them (pg_get_expr of polqual / polwithcheck).

The deparsed text is regular: keywords upper case, every operator parenthesized, constants cast
(`'app.user_id'::text`). A small lexer that knows string literals and quoted identifiers is
enough to answer the three questions the rules ask, without guessing inside quotes:

- does the expression hold a subquery, a `(SELECT ...)` of any kind? (P1)
- does it read a relation (a FROM anywhere)? (P2)
- does it restrict tenant_id to the tenant setting, and nothing looser? (T3)

The setting's and the function's names come from the one module that sets the tenant.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from tenantry.tenancy.session import CURRENT_TENANT_FUNCTION, TENANT_SETTING

__all__ = ["CURRENT_TENANT_FUNCTION", "TENANT_SETTING", "has_subquery", "is_tenant_scoped", "reads_relations"]

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>[EeBbXxNnUu]?&?'(?:[^']|'')*')
    | (?P<ident>"(?:[^"]|"")*")
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
    | (?P<cast>::)
    | (?P<op>[-+*/<>=~!@\#%^&|`?]+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokens(expression: str) -> list[str]:
    """Tokens of a deparsed expression: words lower-cased, literals and quoted names verbatim."""
    out = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind == "space":
            continue
        value = match.group()
        out.append(value.lower() if kind == "word" else value)
    return out


def has_subquery(expression: str) -> bool:
    """True when the expression holds a `(SELECT ...)`: Citus refuses those in a policy on a
    distributed table, the initPlan form `(SELECT current_setting(...))` included."""
    toks = tokens(expression)
    return any(tok == "(" and nxt == "select" for tok, nxt in itertools.pairwise(toks))


def reads_relations(expression: str) -> bool:
    """True when the expression holds a subquery with a FROM clause (over any table or view)."""
    return "from" in tokens(expression)


def _strip_parens(toks: list[str]) -> list[str]:
    """Remove parentheses that wrap the whole token list."""
    while len(toks) >= 2 and toks[0] == "(" and toks[-1] == ")":
        depth = 0
        for i, tok in enumerate(toks):
            depth += tok == "("
            depth -= tok == ")"
            if depth == 0 and i < len(toks) - 1:
                return toks  # the first parenthesis closes before the end: "(a) AND (b)"
        toks = toks[1:-1]
    return toks


def _conjuncts(toks: list[str]) -> Iterator[list[str]]:
    """Split on AND at the top level (AND only narrows: one tenant conjunct is enough)."""
    depth, start = 0, 0
    for i, tok in enumerate(toks):
        depth += tok == "("
        depth -= tok == ")"
        if tok == "and" and depth == 0:
            yield _strip_parens(toks[start:i])
            start = i + 1
    yield _strip_parens(toks[start:])


def _wrapped(pattern: str) -> str:
    """The pattern, bare or inside one pair of parentheses (the deparser adds them freely)."""
    return rf"(?:\( {pattern} \)|{pattern})"


def _setting_value_pattern(setting: str) -> str:
    literal = re.escape("'" + setting.replace("'", "''") + "'")
    call = rf"current_setting \( {literal} :: text(?: , (?:true|false))? \)"
    text_value = rf"(?:nullif \( {call} , '' :: text \)|{call})"
    uuid_value = rf"{_wrapped(text_value)} :: uuid"
    alias = r"(?: as \S+)?"
    # The cast inside the subquery, as the contract writes it, or applied to the subquery's result.
    subquery = rf"\( select {_wrapped(uuid_value)}{alias} \)"
    text_subquery = rf"\( select {_wrapped(text_value)}{alias} \)"
    cast_subquery = rf"{_wrapped(text_subquery)} :: uuid"
    # The contract's form: the function, which the deparser prints qualified unless on the path.
    function = rf"(?:public \. )?{re.escape(CURRENT_TENANT_FUNCTION)} \( \)"
    return rf"(?:{function}|{_wrapped(subquery)}|{cast_subquery}|{_wrapped(uuid_value)})"


def is_tenant_scoped(expression: str | None, column: str = "tenant_id", setting: str = TENANT_SETTING) -> bool:
    """True when the expression is `column = <the tenant setting as uuid>`, or that AND more.

    Accepted values: `tenantry_current_tenant()` as the contract writes it, and the setting read
    in place, `nullif(current_setting(<setting>, true), '')::uuid`, with or without nullif or
    missing_ok, bare or in a `(SELECT ...)` (rule P1 reports that one separately).
    """
    if not expression:
        return False
    value = _setting_value_pattern(setting)
    name = re.escape(column)
    pattern = re.compile(rf"^(?:{name} = {value}|{value} = {name})$")
    toks = _strip_parens(tokens(expression))
    return any(pattern.match(" ".join(conjunct)) for conjunct in _conjuncts(toks))
