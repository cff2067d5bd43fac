"""Personal access tokens (tenant side) and platform admin tokens."""
