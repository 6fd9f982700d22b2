"""CLI commands over customer data: import, merge, change of phone."""

from __future__ import annotations

from typing import Any


def add_data_commands(sub: Any) -> None:
    """Register `import customers`, `customer merge` and `customer change-phone`."""
    del sub  # filled in by the data-commands change
