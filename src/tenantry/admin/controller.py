"""Placeholder while the controller is being written; replaced before commit."""

from litestar import Controller


class AdminWorkspaceController(Controller):
    path = "/admin/v1/workspaces"


class AdminAuditController(Controller):
    path = "/admin/v1/audit-events"
