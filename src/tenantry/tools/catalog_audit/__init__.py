"""`tenantry audit`: the isolation contract (docs/security.md, the contract), checked against the live catalog.

Each rule is a named check in one of the *_rules modules; `audit_database` reads the catalog
once (catalog.py) and runs them all; report.py renders the result for people and for --json.
"""

from tenantry.tools.catalog_audit.audit import RULES, AuditReport, audit_catalog, audit_database
from tenantry.tools.catalog_audit.catalog import AuditError, AuditRoles
from tenantry.tools.catalog_audit.findings import Finding, Rule
from tenantry.tools.catalog_audit.function_rules import DEFINER_ALLOWLIST
from tenantry.tools.catalog_audit.queries import load_catalog

__all__ = [
    "DEFINER_ALLOWLIST",
    "RULES",
    "AuditError",
    "AuditReport",
    "AuditRoles",
    "Finding",
    "Rule",
    "audit_catalog",
    "audit_database",
    "load_catalog",
]
