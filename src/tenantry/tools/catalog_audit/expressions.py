"""Reading policy expressions as PostgreSQL deparses them (pg_get_expr of polqual / polwithcheck).

The deparsed text is regular: keywords upper case, every operator parenthesized, constants cast
(`'app.tenant_id'::text`). A small lexer that knows string literals and quoted identifiers is
enough to answer the three questions the rules ask, without guessing inside quotes:

- is every current_setting() call inside a `(SELECT ...)`? (P1)
- does the expression read a relation (a FROM anywhere)? (P2)
- does it restrict tenant_id to the tenant setting, and nothing looser? (T3)
"""

from __future__ import annotations

import re
from collections.abc import Iterator

TENANT_SETTING = "app.tenant_id"

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


def current_setting_outside_select(expression: str) -> bool:
    """True when some current_setting(...) call is not inside a `(SELECT ...)` subquery.

    Inside `(SELECT ...)` PostgreSQL evaluates it once per statement, as an initPlan; bare, it is
    called for every row the policy looks at.
    """
    stack: list[bool] = []  # per open parenthesis: does it open a SELECT?
    toks = tokens(expression)
    for i, tok in enumerate(toks):
        if tok == "(":
            stack.append(i + 1 < len(toks) and toks[i + 1] == "select")
        elif tok == ")" and stack:
            stack.pop()
        elif tok == "current_setting" and i + 1 < len(toks) and toks[i + 1] == "(" and not any(stack):
            return True
    return False


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
    return rf"(?:{_wrapped(subquery)}|{cast_subquery}|{_wrapped(uuid_value)})"


def is_tenant_scoped(expression: str | None, column: str = "tenant_id", setting: str = TENANT_SETTING) -> bool:
    """True when the expression is `column = <the tenant setting as uuid>`, or that AND more.

    Accepted values: `(SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)` as the
    contract writes it, and the same without nullif, without missing_ok, or without the SELECT
    (rule P1 reports that one separately).
    """
    if not expression:
        return False
    value = _setting_value_pattern(setting)
    name = re.escape(column)
    pattern = re.compile(rf"^(?:{name} = {value}|{value} = {name})$")
    toks = _strip_parens(tokens(expression))
    return any(pattern.match(" ".join(conjunct)) for conjunct in _conjuncts(toks))
