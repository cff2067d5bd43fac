"""Errors of lookup lists."""

from __future__ import annotations

from tenantry.core.errors import Conflict


class LookupInUse(Conflict):
    """An entry that rows still use cannot be deleted; the problem says how many.

    The count is in the detail and, machine-readable, in `errors` (field `usage_count`): the problem
    layer renders no extension members (yet), so `usage_count` is also kept on the exception.
    """

    type = "lookup-in-use"
    title = "Lookup in use"

    def __init__(self, usage_count: int, used_by: str) -> None:
        rows = f"{usage_count} {used_by}" if usage_count != 1 else f"1 {used_by.removesuffix('s')}"
        super().__init__(
            f"This entry is used by {rows}; remove it from them before deleting it.",
            errors=[{"field": "usage_count", "message": str(usage_count)}],
        )
        self.usage_count = usage_count
