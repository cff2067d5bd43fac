"""Request bodies: JSON only, decoded strictly before Litestar sees them.

Litestar converts bodies non-strictly (so "12" would become 12); a typed API must refuse that.
This hook decodes the raw body once with msgspec in strict mode against the handler's declared
body type and turns every failure into a 400 (not JSON) or a 422 naming the field.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException

from tenantry.core.errors import DomainError, InvalidInput
from tenantry.core.schemas import with_published_patterns

_JSON_TYPES = ("application/json", "application/merge-patch+json")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


class MalformedBody(DomainError):
    status = 400
    type = "malformed-json"
    title = "Malformed JSON"


@cache
def _decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type, strict=True)


def _field_error(message: str) -> dict[str, str]:
    match = _AT_PATH.search(message)
    field = match.group(1) if match and match.group(1) else "body"
    return {"field": field, "message": with_published_patterns(_AT_PATH.sub("", message))}


async def validate_json_body(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: 415 for a non-JSON body, then a strict decode of the declared type."""
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if has_body and content_type not in _JSON_TYPES:
        raise HTTPException(status_code=415, detail="Send the body as application/json.")
    data_field = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data_field is None:
        return
    body = await request.body()
    if not body.strip():
        if data_field.is_optional or data_field.has_default:
            return  # an optional body may be left out
        raise MalformedBody("A JSON body is required.")
    try:
        _decoder(data_field.annotation).decode(body)
    except msgspec.ValidationError as exc:
        error = _field_error(str(exc))
        raise InvalidInput("The body does not match the schema.", errors=[error]) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody("The body is not valid JSON.", errors=[{"field": "body", "message": str(exc)}]) from None
