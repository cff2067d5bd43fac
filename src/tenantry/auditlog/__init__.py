"""The audit logs: tenant-scoped and append-only, plus the platform's own for admin actions."""
