-- Tenant tables: orders, their status history and their tags. Orders are never deleted by the
-- tenant role (their product can be soft-deleted, never purged while they exist); the history is
-- append-only (SELECT and INSERT, like the audit log); tags are a set the tenant role replaces
-- (INSERT and DELETE). The platform role deletes only when purging a workspace (with that
-- workspace set).
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.orders FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.orders;
CREATE POLICY tenant_isolation ON public.orders
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.orders FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.orders TO {{tenant_role}};
GRANT SELECT, DELETE ON public.orders TO {{platform_role}};

ALTER TABLE public.order_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.order_status_history FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.order_status_history;
CREATE POLICY tenant_isolation ON public.order_status_history
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.order_status_history FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT ON public.order_status_history TO {{tenant_role}};
GRANT SELECT, DELETE ON public.order_status_history TO {{platform_role}};

ALTER TABLE public.order_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.order_tags FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS tenant_isolation ON public.order_tags;
CREATE POLICY tenant_isolation ON public.order_tags
    AS PERMISSIVE FOR ALL TO {{tenant_role}}, {{platform_role}}
    USING (tenant_id = public.tenantry_current_tenant())
    WITH CHECK (tenant_id = public.tenantry_current_tenant());

REVOKE ALL ON public.order_tags FROM PUBLIC, {{tenant_role}}, {{platform_role}}, {{app_role}};
GRANT SELECT, INSERT, DELETE ON public.order_tags TO {{tenant_role}};
GRANT SELECT, DELETE ON public.order_tags TO {{platform_role}};
