"""Pure booking rules and types: no I/O, importable from workflows."""
