"""Cross-cutting pieces: tenant context, database sessions, errors, request log, ids."""
