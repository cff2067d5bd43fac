-- Schema privileges. Only the owner creates objects; nobody else may CREATE in any schema
-- (docs/security.md, contract rule 1): a tenant-reachable role that can create a function or table can shadow ours.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {{tenant_role}}, {{platform_role}}, {{app_role}};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
-- Temporary tables are objects too: a role that can create them can shadow names in its session.
DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$;
