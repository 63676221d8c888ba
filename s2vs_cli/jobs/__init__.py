"""What combines the rest: one library entry point per command (extraction, compare, search, evaluate, train)."""
