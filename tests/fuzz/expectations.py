"""Where a check's generic expectation does not fit this API, narrowly and with the reason.

Each exception below matches one documented behaviour by its problem type (and field), never a
whole check or a whole operation, so any other rejection of valid input still fails the run.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
import schemathesis
from schemathesis import Case
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema

from tenantry.http.idempotency import IDEMPOTENCY_HEADER, MAX_KEY_LENGTH
from tenantry.http.problems import PROBLEM_BASE

_VALID_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")

# Operations that would take the fuzzer's own credentials away, by the path parameter naming them.
# The stateful phase follows links (listTokens -> revokeToken, listWorkspaces -> suspendWorkspace)
# and would otherwise revoke its own token or suspend its own workspace after a few steps, leaving
# every later request a 401 or 403 that tests nothing.
CREDENTIAL_DESTROYING = {
    "revokeToken": "token_id",
    "rotateToken": "token_id",
    "deactivateMember": "member_id",
    "removeMember": "member_id",
    "updateMember": "member_id",
    "suspendWorkspace": "workspace_id",
    "scheduleWorkspaceDeletion": "workspace_id",
    "purgeWorkspace": "workspace_id",
}
# The fuzzer's own workspace, owner member and owner token (set by the fuzz_target fixture).
PROTECTED_IDS: set[str] = set()


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    """A fresh Idempotency-Key for every request that carries a valid one.

    The document's example key (and the few short keys the generator favours) would otherwise be
    sent with many different requests, and a key reused with a different request is a documented
    422 (tests/integration/test_idempotency.py covers it). A real client sends a new key per
    request; invalid keys are left as generated, so their 400 is still fuzzed.
    """
    key = (case.headers or {}).get(IDEMPOTENCY_HEADER)
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        case.headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())
    # Aimed at the fuzzer's own credentials: the same call on an id that does not exist (a 404).
    parameter = CREDENTIAL_DESTROYING.get(case.operation.schema.get_operation_id(case.operation) or "")
    if parameter and str((case.path_parameters or {}).get(parameter, "")).lower() in PROTECTED_IDS:
        case.path_parameters[parameter] = str(uuid.uuid4())


def _problem(response: Response) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


# (operationId or None for any, status, problem type) of answers to schema-valid input that are right.
STATE_DEPENDENT_REFUSALS: dict[tuple[str | None, int, str], str] = {
    # A cursor is an opaque value the server signs (tenancy/pagination.py); any string it did not
    # issue is refused, however schema-valid. Real cursors are followed in the integration tests.
    (None, 400, "invalid-cursor"): "unsigned cursor",
    # Invitation tokens are secrets: unknown, expired, revoked and used tokens answer the same 410,
    # so the answer cannot be used to probe for live tokens.
    ("acceptInvitation", 410, "invitation-unavailable"): "unknown invitation token",
    # If-Match must equal the resource's current ETag, which only a GET just before can know.
    (None, 412, "precondition-failed"): "stale If-Match",
}


def register_expectations(schema: BaseSchema) -> None:
    @schema.hook
    def filter_failure(context: HookContext, failure: Failure, case: Case, response: Response) -> bool:
        if "positive_data_acceptance" not in failure.checks:
            return True
        problem = _problem(response)
        slug = str(problem.get("type", "")).removeprefix(PROBLEM_BASE)
        operation_id = case.operation.schema.get_operation_id(case.operation)
        for (operation, status, expected_slug), _reason in STATE_DEPENDENT_REFUSALS.items():
            if operation in (None, operation_id) and response.status_code == status and slug == expected_slug:
                return False
        return not any(refused(operation_id, response.status_code, problem) for refused in STATE_DEPENDENT_VALIDATIONS)


def _errors(problem: dict[str, Any]) -> list[dict[str, Any]]:
    errors = problem.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) and errors else []


def _lookup_kind_changed(operation_id: str | None, status: int, problem: dict[str, Any]) -> bool:
    # A lookup's kind may be repeated in a PATCH but never changed (documented on LookupUpdate):
    # whether `kind` is acceptable depends on the stored row.
    return (
        operation_id == "updateLookup"
        and status == 422
        and _errors(problem) == [{"field": "kind", "message": "cannot be changed"}]
    )


def _dangling_reference(operation_id: str | None, status: int, problem: dict[str, Any]) -> bool:
    # An id in a body must name a row of this workspace (a product, category, tag): the schema
    # can only say "a uuid". Each such error names the field and says "unknown ...".
    errors = _errors(problem)
    return (
        status == 422
        and bool(errors)
        and all(
            str(e.get("field", "")).split("[")[0].endswith(("_id", "_ids"))
            and str(e.get("message", "")).startswith("unknown ")
            for e in errors
        )
    )


_INTEGRAL_FLOAT = ("Expected `int`, got `float`", "Expected `int | null`, got `float`")


def _integral_float(operation_id: str | None, status: int, problem: dict[str, Any]) -> bool:
    # JSON Schema counts 7.0 as an integer; the API decodes bodies strictly (http/body.py) and
    # takes integers written as integers, as JSON clients send them.
    errors = _errors(problem)
    return status == 422 and bool(errors) and all(str(e.get("message", "")) in _INTEGRAL_FLOAT for e in errors)


def _confirm_slug_mismatch(operation_id: str | None, status: int, problem: dict[str, Any]) -> bool:
    # Purging early needs the workspace's own slug typed out: any other slug is schema-valid.
    return (
        operation_id == "purgeWorkspace"
        and status == 422
        and _errors(problem) == [{"field": "confirm_slug", "message": "does not match the workspace's slug"}]
    )


def _nul_in_metadata(operation_id: str | None, status: int, problem: dict[str, Any]) -> bool:
    # Workspace metadata is free-form JSON, so the schema cannot forbid U+0000 in nested strings;
    # its description does (PostgreSQL's jsonb cannot store it).
    return status == 422 and _errors(problem) == [{"field": "metadata", "message": "NUL characters are not allowed"}]


STATE_DEPENDENT_VALIDATIONS = (
    _lookup_kind_changed,
    _dangling_reference,
    _integral_float,
    _confirm_slug_mismatch,
    _nul_in_metadata,
)
