"""The order status machine (orders/status.py): every pair of statuses, allowed or refused."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest

from tenantry.core.errors import Conflict
from tenantry.orders.status import INITIAL_STATUS, TRANSITIONS, IllegalTransition, OrderStatus, check_transition

STATUSES = get_args(OrderStatus)
ALLOWED = {
    ("created", "processing"),
    ("created", "cancelled"),
    ("processing", "paid"),
    ("processing", "cancelled"),
    ("paid", "refunded"),
}


def test_the_machine_knows_every_status_and_starts_at_created() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert INITIAL_STATUS == "created"
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_each_transition_is_allowed_exactly_when_the_machine_says(source: str, target: str) -> None:
    if (source, target) in ALLOWED:
        check_transition(source, target)
        return
    with pytest.raises(IllegalTransition) as refused:
        check_transition(source, target)
    assert isinstance(refused.value, Conflict)  # answered 409 by the one problem layer
    assert refused.value.type == "illegal-transition"


def test_refunded_and_cancelled_are_final_and_no_status_returns_to_itself() -> None:
    assert TRANSITIONS["refunded"] == frozenset()
    assert TRANSITIONS["cancelled"] == frozenset()
    assert all(status not in targets for status, targets in TRANSITIONS.items())


def test_nothing_leads_back_to_created() -> None:
    assert all("created" not in targets for targets in TRANSITIONS.values())


def test_the_refusal_names_where_the_order_can_go_instead() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition("created", "paid")
    assert "'created' to 'paid'" in refused.value.detail
    assert "'cancelled', 'processing'" in refused.value.detail
    assert refused.value.extra["errors"] == [{"field": "to", "message": "not allowed from 'created'"}]

    with pytest.raises(IllegalTransition) as final:
        check_transition("refunded", "paid")
    assert "none (it is final)" in final.value.detail
