"""The OpenAPI 3.1 document: what Litestar infers from the handlers, plus what it cannot.

Litestar knows each operation's parameters, body and success answer. It does not know the
problems (RFC 9457) an operation can answer with, because they come from middleware, hooks and
services rather than from the signature. `complete_document` adds them from rules that mirror
where those errors come from:

| status | when                                                                   |
|--------|------------------------------------------------------------------------|
| 400    | always: an undeclared query parameter, a malformed path id or body     |
| 401    | every path that needs a token (public paths declare their own in opt)  |
| 403    | tenant paths: the token lacks the permission, or the workspace is off  |
| 404    | paths with an id                                                       |
| 409    | writes, except public ones: conflicts, illegal transitions, a key in use |
| 410    | declared in opt (an invitation that can no longer be accepted)         |
| 412    | operations that accept If-Match                                        |
| 413, 415 | operations with a body                                               |
| 422    | operations with a body, and POSTs that take an Idempotency-Key         |
| 429    | tenant paths (request limits, http/limits.py); throttled public ones (opt) |
| 503    | every operation that reaches the database                              |

A handler names extra problems in its opt: `opt={"problems": (410, 429)}`. The document also gets
the security schemes, summaries from docstrings, the Request-Id, Location, ETag and
Idempotency-Key headers, and an example for every success body that lacks one. Patterns are
published as clients read them, ECMA-262: the code's closing `\\Z` becomes `$` (core/schemas.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, NamedTuple

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPI
from litestar.routes import HTTPRoute

from tenantry.auth.middleware import ADMIN_PATHS, PUBLIC_PATHS
from tenantry.core.schemas import published
from tenantry.http.idempotency import IDEMPOTENCY_HEADER, IDEMPOTENT_OPT, MAX_KEY_LENGTH, REDACT_OPT, REPLAYED_HEADER
from tenantry.http.openapi_bodies import RequestBodyFacts, describe_request_bodies, request_body_facts
from tenantry.http.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, FieldError, Problem
from tenantry.http.querying import NO_CONTROL_CHARACTERS_PATTERN

PROBLEMS_OPT = "problems"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The liveness probe answers from the process alone; everything else can find the database down.
NO_DATABASE = frozenset({"healthLive"})
# Operations whose handlers live in files that do not declare `problems` in their opt yet.
_KEY_RULE = f"1 to {MAX_KEY_LENGTH} printable ASCII characters"


class ProblemSpec(NamedTuple):
    """One documented problem status: its reusable response and example bodies."""

    component: str
    description: str
    examples: tuple[tuple[str, str, str], ...]  # (slug, title, detail)
    headers: tuple[str, ...] = ()


PROBLEMS: dict[int, ProblemSpec] = {
    400: ProblemSpec(
        "BadRequest",
        "The request is malformed: an undeclared query parameter, a query value that is invalid or holds a "
        "control character, a malformed id or cursor, invalid JSON, a repeated Authorization header.",
        (
            ("unknown-query-parameter", "Unknown query parameter", "Unknown query parameter: categroy_id."),
            ("malformed-json", "Malformed JSON", "The body is not valid JSON."),
            (
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                f"The {IDEMPOTENCY_HEADER} header must be sent once, with {_KEY_RULE}.",
            ),
        ),
    ),
    401: ProblemSpec(
        "Unauthenticated",
        "No valid token: missing, malformed, unknown, revoked or expired all answer the same.",
        (("unauthenticated", "Unauthenticated", "A valid bearer token is required."),),
        ("WWW-Authenticate",),
    ),
    403: ProblemSpec(
        "PermissionDenied",
        "The token lacks the permission (named in X-Accepted-Permissions), or the workspace is suspended.",
        (
            ("permission-denied", "Permission denied", "This token lacks the 'products:write' permission."),
            ("workspace-suspended", "Workspace suspended", "This workspace is suspended."),
        ),
    ),
    404: ProblemSpec(
        "NotFound",
        "No such resource for this caller: another workspace's id answers exactly like one that never existed.",
        (("not-found", "Not found", "The resource was not found."),),
    ),
    409: ProblemSpec(
        "Conflict",
        "The request conflicts with the current state, or a request with the same Idempotency-Key is still running.",
        (
            ("conflict", "Conflict", "The request conflicts with an existing resource."),
            (
                "idempotency-key-in-progress",
                "Request in progress",
                f"A request with this {IDEMPOTENCY_HEADER} is still in progress; retry once it has finished.",
            ),
        ),
    ),
    410: ProblemSpec(
        "Gone",
        "The resource is no longer available (e.g. an invitation that expired, was revoked or was used).",
        (
            (
                "invitation-unavailable",
                "Invitation unavailable",
                "This invitation cannot be accepted: it is unknown, expired, revoked or already used.",
            ),
        ),
    ),
    412: ProblemSpec(
        "PreconditionFailed",
        "If-Match does not match the current ETag: someone changed the resource since you read it.",
        (
            (
                "precondition-failed",
                "Precondition failed",
                "The resource has changed since you read it: fetch it again and retry.",
            ),
        ),
    ),
    413: ProblemSpec(
        "PayloadTooLarge",
        "The body is larger than the configured limit.",
        (("payload-too-large", "Payload too large", "Request Entity Too Large"),),
    ),
    415: ProblemSpec(
        "UnsupportedMediaType",
        "The body is not sent as application/json.",
        (("unsupported-media-type", "Unsupported media type", "Send the body as application/json."),),
    ),
    422: ProblemSpec(
        "InvalidInput",
        "The body does not match the schema (field-level detail in `errors`), or an Idempotency-Key is reused "
        "with a different request.",
        (
            ("validation-error", "Invalid input", "The body does not match the schema."),
            (
                "idempotency-key-reused",
                "Idempotency key reused",
                f"This {IDEMPOTENCY_HEADER} was already used with a different request; send a new key.",
            ),
        ),
    ),
    429: ProblemSpec(
        "TooManyRequests",
        "Too many requests or attempts; retry after the number of seconds in Retry-After. A request limit "
        "(`rate-limited`) also names the policies that refused in `violated_policies`, and sends "
        "RateLimit-Policy and RateLimit.",
        (
            (
                "rate-limited",
                "Rate limit exceeded",
                "The request rate allowed for this token was reached; retry after 1 s.",
            ),
            ("too-many-requests", "Too many requests", "Too many attempts; retry later."),
        ),
        ("Retry-After", "RateLimit-Policy", "RateLimit"),
    ),
    503: ProblemSpec(
        "ServiceUnavailable",
        "The database is unavailable or too slow; retry after the number of seconds in Retry-After.",
        (("service-unavailable", "Service unavailable", "The database is unavailable; retry shortly."),),
        ("Retry-After",),
    ),
}
# Field-level detail in the examples that have it.
_EXAMPLE_ERRORS = {
    "unknown-query-parameter": [{"field": "categroy_id", "message": "is not a parameter of this route"}],
    "validation-error": [{"field": "price_cents", "message": "Expected `int`, got `str`"}],
    "invalid-idempotency-key": [{"field": IDEMPOTENCY_HEADER, "message": f"must be {_KEY_RULE}"}],
}

HEADERS: dict[str, dict[str, Any]] = {
    "Request-Id": {
        "description": "Identifies this request in the logs; a valid client X-Request-Id (8 to 128 of "
        "`A-Za-z0-9._:-`) is kept, otherwise one is generated.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "The URL of the created resource.", "required": True, "schema": {"type": "string"}},
    "ETag": {"description": "The representation's version, for If-Match.", "schema": {"type": "string"}},
    REPLAYED_HEADER: {
        "description": f"`true` when this is the stored answer to an earlier request with the same {IDEMPOTENCY_HEADER}.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    # draft-ietf-httpapi-ratelimit-headers; the policies are described in docs/05-api-guide.md.
    "RateLimit-Policy": {
        "description": 'The request limits of this workspace and token: `"workspace";q=200;w=2, "token";q=100;w=2, '
        '"workspace-concurrency";q=10;qu="concurrent-requests", "token-concurrency";q=5;qu="concurrent-requests"` '
        "(q requests per w seconds; q requests in flight).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left under each policy: `"workspace";r=199;t=1, "token";r=99;t=1, '
        '"workspace-concurrency";r=9, "token-concurrency";r=4` (r requests now; t seconds until one '
        "more may start).",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "The authentication scheme: Bearer.", "schema": {"type": "string"}},
}

IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Send the same key again to retry safely: for 24 hours, the same request with the same key "
    "(and the same token) gets the first successful answer again, with `Idempotent-Replayed: true`. "
    "Reused with a different body: 422; while the first is still running: 409. Failed requests are not stored.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[\\x20-\\x7e]+$"},
    "examples": {"uuid": {"value": "5f0c6e1e-6a7b-4f43-9d55-0c1b8f8e2f44"}},
}

SECURITY_SCHEMES: dict[str, Any] = {
    "tenantToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tnt_...",
        "description": "A personal access token: every call acts on the token's workspace only.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tna_...",
        "description": "A platform admin token, accepted under /admin/ only.",
    },
}

_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


class DocumentedOpenAPI(OpenAPI):
    """Litestar's document object; serialising it completes it (see `complete_document`)."""

    operation_options: Mapping[str, Mapping[str, Any]] = {}
    request_bodies: Mapping[str, RequestBodyFacts] = {}

    def to_schema(self) -> dict[str, Any]:
        document = complete_document(super().to_schema(), self.operation_options)
        describe_request_bodies(document, self.request_bodies)
        return document


class ApiDocumentation(OpenAPIConfig):
    """An OpenAPIConfig whose document gets the problems, headers and examples Litestar cannot infer.

    Call `describe(app)` once the app exists: the handlers' opt (redacted secrets, extra problems)
    is read from its routes. The document is still built lazily, on the first request for it.
    """

    def describe(self, app: Litestar) -> None:
        self._operation_options = operation_options(app)
        self._request_bodies = request_body_facts(app)

    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        document = DocumentedOpenAPI(**{field.name: getattr(base, field.name) for field in fields(base)})
        document.operation_options = getattr(self, "_operation_options", {})
        document.request_bodies = getattr(self, "_request_bodies", {})
        return document


def operation_options(app: Litestar) -> dict[str, Mapping[str, Any]]:
    """Each operation's handler opt (merged from every layer), by operationId."""
    options: dict[str, Mapping[str, Any]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if isinstance(handler.operation_id, str):
                    options[handler.operation_id] = handler.opt
    return options


def complete_document(document: dict[str, Any], options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Add problems, security, headers, summaries and examples to a generated document (in place)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, problem_schemas = msgspec.json.schema_components(
        [Problem, FieldError], ref_template="#/components/schemas/{name}"
    )
    schemas.update(problem_schemas)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("headers", {}).update({name: dict(spec) for name, spec in HEADERS.items()})
    components.setdefault("responses", {}).update(_problem_responses())
    for path, path_item in document.get("paths", {}).items():
        accepts_if_match = any(_has_parameter(op, "If-Match") for op in _operations(path_item))
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if operation is not None:
                opt = options.get(operation.get("operationId", ""), {})
                _complete_operation(path, method, operation, opt, accepts_if_match, schemas)
    _publish_patterns(document)
    return document


def _publish_patterns(node: Any) -> None:
    """Spell every schema's `pattern` as ECMA-262 reads it (see `published`), in place."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            node["pattern"] = published(pattern)
        for value in node.values():
            _publish_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _publish_patterns(value)


def applicable_problems(path: str, method: str, operation: Mapping[str, Any], opt: Mapping[str, Any]) -> set[int]:
    """The problem statuses an operation can answer with (see the table in the module docstring)."""
    public = PUBLIC_PATHS.match(_concrete(path)) is not None
    admin = ADMIN_PATHS.match(path) is not None
    statuses = {400}
    if not public:
        statuses.add(401)
        if not admin:
            statuses.update({403, 429})
        if method in WRITE_METHODS:
            statuses.add(409)
    if _PATH_PARAMETER.search(path):
        statuses.add(404)
    if _has_parameter(operation, "If-Match"):
        statuses.add(412)
    if "requestBody" in operation:
        statuses.update({413, 415, 422})
    if takes_idempotency_key(path, method, opt):
        statuses.update({409, 422})
    if operation.get("operationId") not in NO_DATABASE:
        statuses.add(503)
    statuses.update(opt.get(PROBLEMS_OPT, ()))
    return statuses


def takes_idempotency_key(path: str, method: str, opt: Mapping[str, Any]) -> bool:
    """Tenant POSTs (not the public ones), and the admin POSTs whose handler opts in."""
    if method != "post" or PUBLIC_PATHS.match(_concrete(path)):
        return False
    return not ADMIN_PATHS.match(path) or bool(opt.get(IDEMPOTENT_OPT))


def _complete_operation(
    path: str,
    method: str,
    operation: dict[str, Any],
    opt: Mapping[str, Any],
    accepts_if_match: bool,
    schemas: Mapping[str, Any],
) -> None:
    description = (operation.get("description") or "").strip()
    if description:  # the docstring's first sentence
        operation["summary"] = description.splitlines()[0].strip().split(". ")[0].rstrip(".")
    public = PUBLIC_PATHS.match(_concrete(path)) is not None
    operation["security"] = [] if public else [{"adminToken" if ADMIN_PATHS.match(path) else "tenantToken": []}]
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") == "query" and "schema" in parameter:
            _refuse_control_characters(parameter["schema"])
    idempotent = takes_idempotency_key(path, method, opt)
    if idempotent and not _has_parameter(operation, IDEMPOTENCY_HEADER):
        operation.setdefault("parameters", []).append(copy.deepcopy(IDEMPOTENCY_PARAMETER))
    responses = operation.setdefault("responses", {})
    for status_code, response in responses.items():
        if not status_code.startswith("2") or "$ref" in response:
            continue
        headers = response.setdefault("headers", {})
        headers["Request-Id"] = {"$ref": "#/components/headers/Request-Id"}
        if status_code == "201":
            headers["Location"] = {"$ref": "#/components/headers/Location"}
        if accepts_if_match and method in ("get", "patch") and status_code == "200":
            headers["ETag"] = {"$ref": "#/components/headers/ETag"}
        if not public and not ADMIN_PATHS.match(path):
            for name in ("RateLimit-Policy", "RateLimit"):
                headers[name] = {"$ref": f"#/components/headers/{name}"}
        if idempotent:
            headers[REPLAYED_HEADER] = {"$ref": f"#/components/headers/{REPLAYED_HEADER}"}
            if redacted := tuple(opt.get(REDACT_OPT, ())):
                fields_text = ", ".join(f"`{name}`" for name in redacted)
                response["description"] = (
                    f"{response.get('description', '')}. A replay ({REPLAYED_HEADER}: true) has {fields_text} "
                    "set to null and `replayed: true`: secrets are never stored."
                ).lstrip(". ")
        for media in response.get("content", {}).values():
            if "schema" in media and "example" not in media and "examples" not in media:
                media["examples"] = {"example": {"value": example_for(media["schema"], schemas)}}
    for status in sorted(applicable_problems(path, method, operation, opt)):
        responses[str(status)] = {"$ref": f"#/components/responses/{PROBLEMS[status].component}"}


def _refuse_control_characters(schema: dict[str, Any]) -> None:
    """Free-text query values are refused with a control character (http/querying.py): say so."""
    for keyword in ("oneOf", "anyOf"):
        for branch in schema.get(keyword, ()):
            _refuse_control_characters(branch)
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and not any(keyword in schema for keyword in ("pattern", "enum", "const", "format")):
        schema["pattern"] = NO_CONTROL_CHARACTERS_PATTERN


def _problem_responses() -> dict[str, Any]:
    responses = {}
    for status, spec in PROBLEMS.items():
        headers = {name: {"$ref": f"#/components/headers/{name}"} for name in ("Request-Id", *spec.headers)}
        examples = {}
        for slug, title, detail in spec.examples:
            body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
            if slug in _EXAMPLE_ERRORS:
                body["errors"] = _EXAMPLE_ERRORS[slug]
            examples[slug] = {"summary": title, "value": body}
        responses[spec.component] = {
            "description": spec.description,
            "headers": headers,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}, "examples": examples}},
        }
    return responses


def _operations(path_item: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return (path_item[method] for method in HTTP_METHODS if method in path_item)


def _has_parameter(operation: Mapping[str, Any], name: str) -> bool:
    return any(parameter.get("name", "").lower() == name.lower() for parameter in operation.get("parameters", ()))


def _concrete(path: str) -> str:
    """A path template as a request path, for the authentication middleware's patterns."""
    return _PATH_PARAMETER.sub("x", path)


_STRING_EXAMPLES = {
    "uuid": "0192f0c4-6e1a-7b3c-8d2e-4f5a6b7c8d9e",
    "date-time": "2026-01-15T09:30:00Z",
    "date": "2026-01-15",
    "email": "ada@example.com",
    "uri": "https://example.com/",
}


def example_for(schema: Mapping[str, Any], schemas: Mapping[str, Any], depth: int = 0) -> Any:
    """A plausible value for a JSON schema: its own example if it has one, else built from its type."""
    if depth > 8:
        return None
    if "$ref" in schema:
        return example_for(schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}), schemas, depth + 1)
    for keyword in ("examples", "enum"):
        if schema.get(keyword):
            return schema[keyword][0]
    for keyword in ("example", "const", "default"):
        if keyword in schema:
            return schema[keyword]
    for keyword in ("oneOf", "anyOf", "allOf"):
        if branches := [branch for branch in schema.get(keyword, ()) if branch.get("type") != "null"]:
            return example_for(branches[0], schemas, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: example_for(prop, schemas, depth + 1) for name, prop in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_for(schema.get("items", {}), schemas, depth + 1)]
    if kind == "string":
        return _STRING_EXAMPLES.get(schema.get("format", ""), "string")
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    return None
