"""The platform admin surface: /admin/v1 and `tenantry admin`."""
