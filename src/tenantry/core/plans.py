"""A workspace's plan: its own request limits, where they differ from the deployment's defaults."""

from __future__ import annotations

import msgspec

# Policy names, as the RateLimit and RateLimit-Policy headers call them (docs/06-operations.md).
SCOPES = ("workspace", "token")


class PlanLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Overrides of the default limits; None keeps the deployment's default for that limit.

    `*_requests` per `*_window_s` seconds is a bucket of that many requests refilling evenly over
    the window; `*_concurrency` is how many requests may be in flight at once.
    """

    workspace_requests: int | None = None
    workspace_window_s: int | None = None
    workspace_concurrency: int | None = None
    token_requests: int | None = None
    token_window_s: int | None = None
    token_concurrency: int | None = None


PLAN_FIELDS: tuple[str, ...] = PlanLimits.__struct_fields__
DEFAULT_PLAN = PlanLimits()


class LimitValues(msgspec.Struct, frozen=True, kw_only=True):
    """The limits in force: the plan's where it has one, else the deployment's defaults."""

    workspace_requests: int
    workspace_window_s: int
    workspace_concurrency: int
    token_requests: int
    token_window_s: int
    token_concurrency: int
