"""Per-workspace lookup lists (product categories, order tags): entries cannot be deleted while in use."""
