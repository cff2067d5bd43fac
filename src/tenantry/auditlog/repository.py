"""Data access for the audit logs: the workspace's (tenant) and the platform's (global)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from tenantry.auditlog.models import AuditEvent, PlatformAuditEvent
from tenantry.auditlog.schemas import AuditFilters, PlatformAuditFilters
from tenantry.tenancy.repository import Repository, TenantRepository


class AuditEventRepository(TenantRepository[AuditEvent]):
    model = AuditEvent
    resource = "audit_events"

    def matching(self, filters: AuditFilters) -> Select[Any]:
        """`since` is inclusive and `until` exclusive, on `occurred_at`."""
        query = self.select()
        if filters.action is not None:
            query = query.where(AuditEvent.action == filters.action)
        if filters.actor_member_id is not None:
            query = query.where(AuditEvent.actor_member_id == filters.actor_member_id)
        if filters.target_type is not None:
            query = query.where(AuditEvent.target_type == filters.target_type)
        if filters.target_id is not None:
            query = query.where(AuditEvent.target_id == filters.target_id)
        if filters.token_fingerprint is not None:
            query = query.where(AuditEvent.token_fingerprint == filters.token_fingerprint)
        if filters.since is not None:
            query = query.where(AuditEvent.occurred_at >= filters.since)
        if filters.until is not None:
            query = query.where(AuditEvent.occurred_at < filters.until)
        return query


class PlatformAuditEventRepository(Repository[PlatformAuditEvent]):
    model = PlatformAuditEvent
    resource = "platform-audit-events"

    def matching(self, filters: PlatformAuditFilters) -> Select[Any]:
        query = self.select()
        if filters.action is not None:
            query = query.where(PlatformAuditEvent.action == filters.action)
        if filters.workspace_id is not None:
            query = query.where(PlatformAuditEvent.workspace_id == filters.workspace_id)
        return query
