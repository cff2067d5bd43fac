"""The HTTP edge shared by every domain: problems, request checks, idempotency, the request log,
OpenAPI, and the dependency providers."""
