"""Putting the flows together into one Dialog."""

from __future__ import annotations

from bots.dialog.dialog import Dialog, DialogDeps
from bots.dialog.flows import (
    balance,
    card,
    chat,
    history,
    invite,
    menu,
    profile,
    promotions,
    registration,
    review,
)


def build_dialog(deps: DialogDeps) -> Dialog:
    """The customer dialog with every flow; registration first (it owns /start)."""
    modules = (registration, menu, card, balance, history, promotions, invite, review, profile, chat)
    return Dialog(deps, [m.router for m in modules])
