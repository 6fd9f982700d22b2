"""Composition root: settings, engine, services, adapters, one aiohttp app, the CLI."""
