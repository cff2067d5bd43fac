"""The one layer that turns exceptions into RFC 9457 problem details.

Nothing internal crosses it: no SQL, SQLSTATE, constraint or table names, stack traces or paths.
Database errors are mapped as in docs/05-api-guide.md, Errors.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, InternalServerException, SerializationException, ValidationException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from tenantry.core.errors import DomainError, PermissionDenied, RateLimited, TooManyRequests
from tenantry.core.schemas import with_published_patterns
from tenantry.core.sqlstate import sqlstate_of
from tenantry.http.requestlog import current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://tenantry.dev/problems/"
log = logging.getLogger("tenantry.errors")
# Litestar's detail when the body stream ends in http.disconnect (litestar/connection/request.py).
CLIENT_GONE = "client disconnected prematurely"


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    request_id: str | None = None
    # For a 429 of the request limits: which policies refused (names as in the RateLimit header).
    violated_policies: list[str] | None = None


_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("permission-denied", "Permission denied"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid input"),
    429: ("too-many-requests", "Too many requests"),
    503: ("service-unavailable", "Service unavailable"),
}

# SQLSTATE classes and codes -> (status, detail). The database's own message is never echoed.
NOT_FOUND_DETAIL = "The resource was not found."
_SQLSTATE = {
    "23505": (409, "The request conflicts with an existing resource."),
    "23503": (404, NOT_FOUND_DETAIL),
    "42501": (404, NOT_FOUND_DETAIL),
    "23514": (422, "A value is outside the allowed range."),
    "23502": (422, "A required value is missing."),
    "57014": (503, "The database took too long to answer."),
    # read_only_sql_transaction: the server became a standby or was set read-only (a failover in
    # progress); the transaction rolled back whole, so a retry after the switch is safe.
    "25006": (503, "The database is not accepting writes right now; retry shortly."),
}
_UNAVAILABLE_CLASSES = ("08", "53", "57")  # connection, insufficient resources, operator intervention


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    violated_policies: list[str] | None = None,
) -> Response[Any]:
    default_slug, default_title = _HTTP_TITLES.get(status, ("error", "Error"))
    body = Problem(
        type=PROBLEM_BASE + (slug or default_slug),
        title=title or default_title,
        status=status,
        detail=detail,
        errors=errors,
        # Only a 500 carries the request id in its body; other bodies stay identical per cause,
        # so e.g. every kind of bad token gets byte-for-byte the same 401.
        request_id=current_request_id.get() if status >= 500 and status != 503 else None,
        violated_policies=violated_policies,
    )
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = 'Bearer realm="tenantry"'
    if status == 503:
        all_headers.setdefault("Retry-After", "1")
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=all_headers,
    )


def _field_error(error: object) -> FieldError:
    if isinstance(error, FieldError):
        return error
    if isinstance(error, dict):
        return FieldError(field=str(error.get("field", "body")), message=str(error.get("message", "is invalid")))
    return FieldError(field="body", message=str(error))


def _validation_errors(exc: ValidationException) -> tuple[list[FieldError], bool]:
    """Field-level errors, and whether they concern the body (422) rather than the URL (400)."""
    errors, in_body = [], False
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "")
        if item.get("source") == "body":
            in_body = True
            key = "body" if key in ("", "data") else key
        message = with_published_patterns(str(item.get("message", "is invalid")))
        errors.append(FieldError(field=key or "request", message=message))
    return errors, in_body


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": current_request_id.get(), "route": request.scope.get("path")},
    )
    return problem_response(500, "An internal error occurred; quote the request id when reporting it.", slug="internal")


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The single exception handler registered on the app."""
    if isinstance(exc, DomainError):
        headers = {}
        if isinstance(exc, PermissionDenied):
            headers["X-Accepted-Permissions"] = f"{exc.resource}={exc.permission}"
        violated = None
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
            violated = exc.violated_policies
        raw_errors = exc.extra.get("errors")
        errors = [_field_error(e) for e in raw_errors] if isinstance(raw_errors, list) else None
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.type,
            title=exc.title,
            errors=errors,
            headers=headers,
            violated_policies=violated,
        )
    if isinstance(exc, ValidationException):
        errors, in_body = _validation_errors(exc)
        if in_body:
            return problem_response(422, "The body does not match the schema.", errors=errors)
        return problem_response(400, "The request is not valid.", errors=errors or None)
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, SerializationException):
        # Litestar wraps the decoder's message; msgspec's text names only the byte offset.
        return problem_response(
            400,
            "The body is not valid JSON.",
            slug="malformed-json",
            errors=[FieldError(field="body", message=str(exc.__cause__))],
        )
    if isinstance(exc, InternalServerException) and exc.detail == CLIENT_GONE:
        # The client hung up while sending its body: nothing ran and nobody reads this answer. Not
        # a server error (a load generator stopping mid-request logged one "unhandled error" each).
        log.info("client disconnected before its body arrived", extra={"request_id": current_request_id.get()})
        return problem_response(400, "The client closed the connection before the body was complete.")
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            return _internal_error(request, exc)
        detail = exc.detail if status in (405, 413, 415) else _HTTP_TITLES.get(status, ("", "Error"))[1]
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
        if status == 404:
            detail = NOT_FOUND_DETAIL
        return problem_response(status, str(detail), headers=headers)
    if isinstance(exc, PoolTimeoutError):
        if (metrics := request.app.state.get("metrics")) is not None:
            metrics.pool_timeouts.inc()
        return problem_response(503, "The service is busy; retry shortly.")
    if isinstance(exc, DBAPIError):
        code = sqlstate_of(exc) or ""
        if code in _SQLSTATE:
            status, detail = _SQLSTATE[code]
            return problem_response(status, detail)
        if code[:2] in _UNAVAILABLE_CLASSES or exc.connection_invalidated:
            return problem_response(503, "The database is unavailable; retry shortly.")
        if code.startswith("22"):
            return problem_response(422, "A value is not acceptable.")
        return _internal_error(request, exc)
    if isinstance(exc, (OSError, TimeoutError)):
        return problem_response(503, "The database is unavailable; retry shortly.")
    return _internal_error(request, exc)
