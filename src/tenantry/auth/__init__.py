"""Authentication: the token format, the resolver, and the one middleware that verifies tokens."""
