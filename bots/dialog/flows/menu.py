"""Flow: menu (to be written)."""

from __future__ import annotations

from bots.dialog.dialog import Router, Turn

router = Router("menu")


async def show_menu(turn: Turn, *, edit: bool = False) -> None:
    """The main menu of a registered customer (Card, Balance, Tier, History, ...)."""
    raise NotImplementedError
