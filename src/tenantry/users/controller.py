"""Placeholder while the controller is being written; replaced before commit."""

from litestar import Controller


class AuthController(Controller):
    path = "/v1/auth"
