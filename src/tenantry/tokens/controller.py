"""Placeholder while the controller is being written; replaced before commit."""

from litestar import Controller


class TokenController(Controller):
    path = "/v1/tokens"
