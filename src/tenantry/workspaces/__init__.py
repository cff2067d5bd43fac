"""The control plane: workspaces, users, memberships and the token directory."""
