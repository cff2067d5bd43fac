"""Placeholder while the controller is being written; replaced before commit."""

from litestar import Controller


class MemberController(Controller):
    path = "/v1/members"


class InvitationController(Controller):
    path = "/v1/invitations"
