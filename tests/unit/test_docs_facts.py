"""Facts the docs state that the code decides, checked without a server: the migration head and
the policy files in sample output, every permission resource and role ceiling in the token guide,
every setting in the operations guide. (The docs' shell examples run in tests/docs.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tenantry.auth.permissions import RESOURCES, ROLE_CEILINGS
from tenantry.db.migrate import policy_files
from tenantry.db.paths import migrations_dir
from tenantry.settings import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head
    return head


def _mentions(pattern: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for match in re.finditer(pattern, page.read_text(encoding="utf-8")):
            found.append((page.name, match.group(1)))
    return found


def test_sample_output_names_the_current_migration_head() -> None:
    mentions = _mentions(r"(?:migrated schema \S+ -> |schema already at )(\S+)")
    assert mentions, "no sample output of `tenantry db upgrade` left in the docs"
    assert {revision for _, revision in mentions} == {_head()}, mentions


def test_sample_output_lists_every_policy_file() -> None:
    listed = [(page, files) for page, files in _mentions(r"policies applied: (.+)") if not files.startswith("none")]
    assert listed
    expected = ", ".join(path.name for path in policy_files())
    for page, files in listed:
        assert files.strip() == expected, page


def _table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header line starts with `header`, by first cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_token_guide_lists_every_resource_and_role_ceiling() -> None:
    text = (ROOT / "docs" / "08-token-guide.md").read_text(encoding="utf-8")
    levels = _table_rows(text, "| resource | `read` lets you")
    assert set(levels) == set(RESOURCES)
    ceilings = _table_rows(text, "| resource | owner | admin | member | viewer |")
    assert set(ceilings) == set(RESOURCES)
    for resource, cells in ceilings.items():
        assert cells == [ROLE_CEILINGS[role][resource] for role in ("owner", "admin", "member", "viewer")], resource


@pytest.mark.parametrize("variable", sorted(ENVIRONMENT))
def test_the_operations_guide_documents_every_setting(variable: str) -> None:
    rows = _table_rows((ROOT / "docs" / "06-operations.md").read_text(encoding="utf-8"), "| variable | default |")
    assert variable in rows
