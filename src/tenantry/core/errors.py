"""Domain errors. Services raise these; `core.problems` is the one layer that turns them into HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a failure the caller can understand and act on."""

    status = 400
    type = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class NotFound(DomainError):
    """The resource does not exist for this caller (never existed, or belongs to someone else)."""

    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    type = "conflict"
    title = "Conflict"


class InvalidInput(DomainError):
    status = 422
    type = "validation-error"
    title = "Invalid input"


class Unauthenticated(DomainError):
    status = 401
    type = "unauthenticated"
    title = "Unauthenticated"


class PermissionDenied(DomainError):
    status = 403
    type = "permission-denied"
    title = "Permission denied"

    def __init__(self, resource: str, permission: str) -> None:
        super().__init__(f"This token lacks the '{resource}:{permission}' permission.")
        self.resource = resource
        self.permission = permission


class WorkspaceUnavailable(DomainError):
    """The token is valid but its workspace is suspended or scheduled for deletion."""

    status = 403
    title = "Workspace unavailable"

    def __init__(self, workspace_status: str) -> None:
        if workspace_status == "suspended":
            super().__init__("This workspace is suspended.")
            self.type = "workspace-suspended"
            self.title = "Workspace suspended"
        else:
            super().__init__("This workspace is scheduled for deletion.")
            self.type = "workspace-pending-deletion"
            self.title = "Workspace scheduled for deletion"


class TooManyRequests(DomainError):
    status = 429
    type = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(TooManyRequests):
    """A workspace or token limit refused the request (src/tenantry/http/limits.py)."""

    type = "rate-limited"
    title = "Rate limit exceeded"

    def __init__(self, detail: str, retry_after: int, *, violated_policies: list[str], headers: dict[str, str]) -> None:
        super().__init__(detail, retry_after)
        self.violated_policies = violated_policies
        self.headers = headers


class PreconditionFailed(DomainError):
    status = 412
    type = "precondition-failed"
    title = "Precondition failed"


class ServiceUnavailable(DomainError):
    status = 503
    type = "service-unavailable"
    title = "Service unavailable"


class CommitOutcomeUnknown(ServiceUnavailable):
    """The connection failed while COMMIT was in flight: the server may have committed or not.

    Neither a 2xx nor a plain refusal would be true. The client resolves it by retrying with the
    same Idempotency-Key, or by reading before it writes again (docs/06-operations.md, failure modes).
    """

    type = "commit-outcome-unknown"
    title = "Commit outcome unknown"
