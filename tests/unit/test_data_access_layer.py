"""The data-access layer's rules, checked on the source (docs/03-architecture.md).

- Only repositories build tenant filters: a service that types `Model.tenant_id == ...` by hand is
  one forgotten filter away from a list that scans every workspace (RLS would still hide the rows,
  but the explicit filter is what routes a query to one tenant's rows, on Citus to one shard).
- The tenant statement (role, tenant, user, timeout) is written in tenancy/session.py only, and
  nothing anywhere but the function it calls (migration 0008, redefined by 0011 for Citus's role
  switch) sets the tenant: two ways of setting
  it in one transaction let Citus workers and the coordinator disagree on the tenant.
- Transactions are begun, committed and their violations mapped in tenancy/unit_of_work.py only.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tenantry"
# Setting a tenant-context setting by any means: set_config('app.x', ...), SET [LOCAL] app.x.
SETTER = re.compile(r"set_config\(\s*'app\.|\bSET\s+(?:LOCAL\s+|SESSION\s+)?app\.", re.IGNORECASE)

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


def test_the_tenant_setting_is_named_in_one_module() -> None:
    writers = sorted(name for name, text in _sources() if "app.tenant_id" in text)
    assert writers == ["tenancy/session.py"]


def test_no_setting_is_set_with_set_config() -> None:
    """set_config() is not sent to Citus workers; SET LOCAL is (docs/03-architecture.md)."""
    call = re.compile(r"set_config\(\s*['\":]")
    writers = sorted(
        f"{name}:{number}"
        for name, text in _sources()
        for number, line in enumerate(text.splitlines(), 1)
        if call.search(line) and not line.lstrip().startswith("#")
    )
    assert writers == []


def test_nothing_but_the_context_function_sets_the_tenant() -> None:
    tree = [
        path
        for top in ("src", "tests", "scripts", "migrations", "policies", "docker")
        if (ROOT / top).exists()
        for path in sorted((ROOT / top).rglob("*"))
        if path.suffix in {".py", ".sql", ".sh"} and path.is_file()
    ]
    setters = sorted(
        str(path.relative_to(ROOT))
        for path in tree
        if path.resolve() != Path(__file__).resolve() and SETTER.search(path.read_text(encoding="utf-8"))
    )
    # The audit's tests build such functions on purpose, to show rule F4 reports them.
    assert setters == [
        "migrations/versions/0008_tenant_context.py",
        "migrations/versions/0011_citus_role_switch.py",
        "tests/isolation/test_audit_rules.py",
    ]


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
