"""Async use cases; each owns its transaction."""
