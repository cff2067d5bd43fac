"""Members of a workspace: roles, profiles, activation, invitations."""
