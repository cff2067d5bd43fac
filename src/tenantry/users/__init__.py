"""Users: the global authentication identity (email, argon2id password hash) and password login."""
