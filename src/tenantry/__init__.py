"""Tenantry: a multi-tenant SaaS backend where PostgreSQL row-level security keeps workspaces apart."""

__version__ = "0.1.0"
