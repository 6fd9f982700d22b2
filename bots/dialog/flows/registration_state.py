"""The registration flow's state: which step, and what the steps carry along."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bots.dialog.dialog import Turn

FLOW = "registration"
KEPT = ("ref", "source", "new")  # what the steps carry along (new: a new customer)
PROFILE = ("name", "birthday", "gender")
Step = Callable[..., Awaitable[None]]


def kept(turn: Turn, **more: Any) -> dict[str, Any]:
    return {**{k: v for k, v in turn.account.data.items() if k in KEPT}, **more}


def go(turn: Turn, step: str | None, **more: Any) -> None:
    turn.account.go(FLOW, step, **kept(turn, **more))
