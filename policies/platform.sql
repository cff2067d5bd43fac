-- Global platform tables: admin tokens, the platform audit log, admin idempotency keys and the
-- login throttle. Only the platform role reaches them; the tenant role has no grant at all.
REVOKE ALL ON public.admin_tokens, public.platform_audit_events, public.admin_idempotency_keys,
    public.auth_throttle FROM PUBLIC, {{tenant_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.admin_tokens TO {{platform_role}};
-- Append-only: no UPDATE or DELETE on the platform audit log, for anyone but the owner.
GRANT SELECT, INSERT ON public.platform_audit_events TO {{platform_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.admin_idempotency_keys TO {{platform_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.auth_throttle TO {{platform_role}};
