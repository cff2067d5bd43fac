"""Checks every request passes before its handler runs (the app's one `before_request` hook)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from tenantry.http.body import validate_json_body
from tenantry.http.querying import reject_control_characters, reject_unknown_query_parameters


async def check_request(request: Request[Any, Any, Any]) -> None:
    if request.scope["query_string"]:  # most requests carry none: nothing to parse or check
        reject_unknown_query_parameters(request)
        reject_control_characters(request)
    await validate_json_body(request)
