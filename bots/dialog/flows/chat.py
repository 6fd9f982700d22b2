"""Flow: chat (to be written)."""

from __future__ import annotations

from bots.dialog.dialog import Router

router = Router("chat")
