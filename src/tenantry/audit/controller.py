"""Placeholder while the controller is being written; replaced before commit."""

from litestar import Controller


class AuditEventController(Controller):
    path = "/v1/audit-events"
