"""Fake platform servers speaking real HTTP."""
