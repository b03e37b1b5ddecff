"""PostgreSQL: the source of truth for who gets a slot and for money (ARCHITECTURE rules 1-2)."""
