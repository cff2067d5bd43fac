-- Global identity: email and password hash. Tenants never read this table directly.
REVOKE ALL ON public.users FROM PUBLIC, {{tenant_role}}, {{app_role}};
GRANT SELECT, INSERT, UPDATE ON public.users TO {{platform_role}};
