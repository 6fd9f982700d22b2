"""CLI: `kartochka import customers` (the import service's command line)."""

from __future__ import annotations

from typing import Any


def add_import_commands(sub: Any) -> None:
    """Register `import customers --merchant S FILE.csv [--dry-run]`."""
    del sub  # being written
