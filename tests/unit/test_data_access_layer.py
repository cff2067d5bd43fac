"""The data-access layer's rules, checked on the source (docs/03-architecture.md).

- Only repositories build tenant filters: a service that types `Model.tenant_id == ...` by hand is
  one forgotten filter away from a list that scans every workspace (RLS would still hide the rows,
  but the explicit filter is what routes a query to one tenant's rows, on Citus to one shard).
- The tenant statement (role, tenant, user, timeout) is written in tenancy/session.py only.
- Transactions are begun, committed and their violations mapped in tenancy/unit_of_work.py only.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tenantry"

# A SQL comparison on a tenant column: `Product.tenant_id == ...`, `table.c.tenant_id.in_(...)`.
TENANT_FILTER = re.compile(r"(?:\b[A-Z]\w*|\.c)\.tenant_id\s*(?:==|!=|\.in_\(|\.is_\()")


def _sources() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(PACKAGE)), path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_only_repositories_build_tenant_filters() -> None:
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, text in _sources()
        if not name.endswith("repository.py")
        for number, line in enumerate(text.splitlines(), 1)
        if TENANT_FILTER.search(line)
    ]
    assert offenders == []


def test_the_tenant_statement_is_written_in_one_module() -> None:
    writers = sorted(name for name, text in _sources() if "set_config('app.tenant_id'" in text)
    assert writers == ["tenancy/session.py"]


def test_transactions_and_violations_are_handled_by_the_unit_of_work_only() -> None:
    begins = re.compile(r"session\.begin(?:_nested)?\(")
    offenders = sorted(
        name
        for name, text in _sources()
        if name != "tenancy/unit_of_work.py" and (begins.search(text) or "except IntegrityError" in text)
    )
    assert offenders == []


def test_limit_and_cursor_parameters_are_declared_once() -> None:
    declarations = sorted(name for name, text in _sources() if re.search(r"^(?:Limit|Cursor) = Annotated", text, re.M))
    assert declarations == ["http/querying.py"]
