"""The order status machine: created -> processing -> paid -> refunded, and created or processing -> cancelled."""

from __future__ import annotations

from typing import Literal

from tenantry.core.errors import Conflict

OrderStatus = Literal["created", "processing", "paid", "refunded", "cancelled"]
INITIAL_STATUS = "created"

TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"processing", "cancelled"}),
    "processing": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"refunded"}),
    "refunded": frozenset(),
    "cancelled": frozenset(),
}


class IllegalTransition(Conflict):
    type = "illegal-transition"
    title = "Illegal status transition"

    def __init__(self, from_status: str, to_status: str) -> None:
        allowed = ", ".join(f"'{s}'" for s in sorted(TRANSITIONS[from_status])) or "none (it is final)"
        super().__init__(
            f"An order cannot go from '{from_status}' to '{to_status}'. From '{from_status}' it can go to: {allowed}.",
            errors=[{"field": "to", "message": f"not allowed from '{from_status}'"}],
        )


def check_transition(from_status: str, to_status: str) -> None:
    if to_status not in TRANSITIONS[from_status]:
        raise IllegalTransition(from_status, to_status)
