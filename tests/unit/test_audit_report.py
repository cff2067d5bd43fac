"""The audit's rule registry, its small parsers, and the report for people and for --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from tenantry.tools.catalog_audit import DEFINER_ALLOWLIST, RULES, AuditReport, Finding, citus_rules
from tenantry.tools.catalog_audit.audit import Checked, CitusChecked, TableDistribution
from tenantry.tools.catalog_audit.catalog import (
    AuditRoles,
    Catalog,
    CitusState,
    Column,
    DefinerFunction,
    Distribution,
    SettingDefault,
    Table,
    View,
)
from tenantry.tools.catalog_audit.findings import SEVERITIES, Rule
from tenantry.tools.catalog_audit.function_rules import no_default_tenant, search_path
from tenantry.tools.catalog_audit.key_rules import not_null_columns
from tenantry.tools.catalog_audit.report import exit_code, render_json, render_text, summary
from tenantry.tools.catalog_audit.view_rules import security_invoker

DOC = Path(__file__).resolve().parents[2] / "docs" / "security-audit.md"
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_rules_have_unique_ids_a_severity_a_title_and_a_reason() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) == 27
    for r in RULES:
        assert re.fullmatch(r"[TPKRFVGC][1-9]", r.id)
        assert r.severity in SEVERITIES
        assert r.title
        assert len(r.why) > 60, r.id


def test_every_rule_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for r in RULES:
        assert re.search(rf"^### {r.id} ", text, re.MULTILINE), f"docs/security-audit.md lacks a section for {r.id}"


def test_the_allowlist_is_exactly_the_projects_definer_functions() -> None:
    source = "\n".join(path.read_text(encoding="utf-8") for path in sorted(POLICIES.glob("*.sql")))
    # Each CREATE FUNCTION up to the start of its body: the header says whether it is a definer.
    headers = re.findall(r"CREATE FUNCTION (public\.\w+)\((.*?)\bAS \$\$", source, flags=re.S)
    definers = {name for name, header in headers if "SECURITY DEFINER" in header}
    assert "public.revoke_token_family" in {name for name, _ in headers} - definers  # an invoker helper
    assert definers == DEFINER_ALLOWLIST


def _function(*config: str) -> DefinerFunction:
    return DefinerFunction("public", "f", "public.f()", config, public_execute=False)


def test_search_path_parsing() -> None:
    assert search_path(_function()) is None
    assert search_path(_function("statement_timeout=5s")) is None
    assert search_path(_function("search_path=pg_catalog, pg_temp")) == ["pg_catalog", "pg_temp"]
    assert search_path(_function('search_path=""')) == []
    assert search_path(_function('search_path="$user", public')) == ["$user", "public"]


def test_partial_index_predicates_that_serve_a_foreign_key() -> None:
    assert not_null_columns("(replaced_by_id IS NOT NULL)") == {"replaced_by_id"}
    assert not_null_columns("((a IS NOT NULL) AND (b IS NOT NULL))") == {"a", "b"}
    assert not_null_columns("is_active") is None
    assert not_null_columns("((a IS NOT NULL) OR (b IS NOT NULL))") is None


def test_security_invoker_option_spellings() -> None:
    def view(*options: str) -> View:
        return View(1, "public.v", False, options, frozenset())

    assert security_invoker(view("security_invoker=true"))
    assert security_invoker(view("security_barrier=true", "security_invoker=on"))
    assert not security_invoker(view("security_invoker=false"))
    assert not security_invoker(view())


def _report(*findings: Finding, citus: CitusChecked | None = None) -> AuditReport:
    checked = Checked(
        database="db",
        server_version="18.1",
        schema="public",
        roles={"tenant": "t", "app": "a", "owner": "o"},
        rules=[r.id for r in RULES],
        tenant_tables=["public.products", "public.memberships"],
        global_tables=["public.workspaces"],
        policies=2,
        foreign_keys=1,
        definer_functions=0,
        views=0,
        citus=citus
        or CitusChecked(cluster=False, status="not a Citus cluster", workers=0, tables=[], propagate_set_commands=None),
    )
    return AuditReport(ok=not findings, checked=checked, findings=list(findings))


def test_a_clean_report() -> None:
    report = _report()
    assert exit_code(report) == 0
    assert summary(report) == "27 checks over 2 tenant tables, 1 global table: 0 findings"
    assert render_text(report).endswith(summary(report))
    assert "citus: not a Citus cluster: rules C1-C4 do not apply" in render_text(report)
    assert json.loads(render_json(report)) == {
        "ok": True,
        "checked": msgspec.to_builtins(report.checked),
        "findings": [],
    }


def test_findings_are_grouped_by_severity_worst_first() -> None:
    medium = Finding(rule="K3", severity="medium", title="k3", object="fk x", message="slow", fix="index it")
    critical = Finding(rule="T1", severity="critical", title="t1", object="public.products", message="open", fix="on")
    report = _report(critical, medium)
    text = render_text(report)
    assert exit_code(report) == 1
    assert text.index("CRITICAL (1)") < text.index("MEDIUM (1)")
    assert "HIGH" not in text
    assert "  T1  public.products" in text
    assert "fix: index it" in text
    assert summary(report).endswith(": 2 findings (1 critical, 1 medium)")
    document = json.loads(render_json(report))
    assert document["ok"] is False
    assert [f["rule"] for f in document["findings"]] == ["T1", "K3"]
    assert set(document["findings"][0]) == {"rule", "severity", "title", "object", "message", "fix"}


def test_the_text_report_lists_each_tables_distribution_on_a_cluster() -> None:
    tables = [
        TableDistribution(table="public.products", kind="distributed", column="tenant_id", colocation_id=2, shards=32),
        TableDistribution(table="public.workspaces", kind="reference", column=None, colocation_id=1, shards=1),
        TableDistribution(table="public.alembic_version", kind="local", column=None, colocation_id=None, shards=0),
    ]
    citus = CitusChecked(
        cluster=True,
        status="Citus coordinator with 2 workers",
        workers=2,
        tables=tables,
        propagate_set_commands="local",
    )
    lines = render_text(_report(citus=citus)).splitlines()
    assert "citus: Citus coordinator with 2 workers; the login role's citus.propagate_set_commands: local" in lines
    assert "  public.products         distributed by tenant_id, colocation group 2, 32 shards" in lines
    assert "  public.workspaces       reference" in lines
    assert "  public.alembic_version  coordinator-local" in lines


def _catalog(citus: CitusState, *tenant_tables: str, setting_defaults: tuple[SettingDefault, ...] = ()) -> Catalog:
    tenant = {1: Column("tenant_id", "uuid", True), 2: Column("id", "uuid", True)}
    tables = {oid: Table(oid, f"public.{name}", True, True, tenant) for oid, name in enumerate(tenant_tables, 1)}
    tables[100] = Table(100, "public.workspaces", False, False, {1: Column("id", "uuid", True)})
    return Catalog(
        database="db", server_version="15", schema="public", roles=AuditRoles("t", "a", "o"), tables=tables,
        policies=[], indexes=[], foreign_keys=[], role_by_oid={}, memberships=[], owned={}, may_create={},
        definer_functions=[], views=[], setting_defaults=list(setting_defaults), citus=citus,
    )  # fmt: skip


def _ids(catalog: Catalog, *rules: Rule) -> list[tuple[str, str]]:
    return [(finding.rule, finding.object) for r in rules for finding in r.run(catalog)]


def test_citus_rules_say_nothing_without_a_cluster() -> None:
    """Nothing distributed and no propagation: on plain PostgreSQL that is the normal state."""
    assert _ids(_catalog(CitusState(), "orders", "products"), *citus_rules.RULES) == []


def test_c2_takes_the_group_of_most_tenant_tables_and_on_a_tie_the_first_tables() -> None:
    def placed(group: int) -> Distribution:
        return Distribution("distributed", "tenant_id", group, 32)

    reference = {100: Distribution("reference", None, 1, 1)}
    majority = CitusState(
        cluster=True, propagate_set_commands="local", tables={1: placed(7), 2: placed(2), 3: placed(2), **reference}
    )
    catalog = _catalog(majority, "a_first", "orders", "products")
    assert _ids(catalog, *citus_rules.RULES) == [("C2", "public.a_first")]
    finding = citus_rules.one_colocation_group.run(catalog)[0]
    assert "colocate_with => 'public.orders'" in finding.fix
    tie = CitusState(cluster=True, propagate_set_commands="local", tables={1: placed(7), 2: placed(2), **reference})
    assert _ids(_catalog(tie, "a_first", "orders"), *citus_rules.RULES) == [("C2", "public.orders")]


def test_c4_names_where_the_login_role_gets_its_setting() -> None:
    state = CitusState(cluster=True, propagate_set_commands="none", propagate_source="ALTER DATABASE")
    findings = citus_rules.set_local_reaches_the_workers.run(_catalog(state, "orders"))
    assert [f.object for f in findings] == ["role a"]
    assert "none (from ALTER DATABASE)" in findings[0].message
    assert findings[0].fix.startswith('ALTER ROLE "a" IN DATABASE "db" SET citus.propagate_set_commands = local;')


def test_f6_fix_resets_the_default_where_it_was_given() -> None:
    defaults = (
        SettingDefault("app_role", "db", "x=1"),
        SettingDefault("app_role", None, "x=1"),
        SettingDefault(None, "db", "x=1"),
        SettingDefault(None, None, "x=1", server="configuration file"),
    )
    findings = no_default_tenant.run(_catalog(CitusState(), "orders", setting_defaults=defaults))
    assert [f.object for f in findings] == [
        "role app_role in database db",
        "role app_role in every database",
        "every role in database db",
        "the server configuration (configuration file)",
    ]
    assert [f.fix.split(";")[0] for f in findings] == [
        "ALTER ROLE app_role IN DATABASE db RESET app.tenant_id",
        "ALTER ROLE app_role RESET app.tenant_id",
        "ALTER DATABASE db RESET app.tenant_id",
        "remove app.tenant_id from the server's configuration file, then reload",
    ]
