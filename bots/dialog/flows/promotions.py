"""Flow: promotions (to be written)."""

from __future__ import annotations

from bots.dialog.dialog import Router

router = Router("promotions")
