"""Flow: the main menu of a registered customer, and the small helpers every menu screen uses."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bots.dialog.dialog import Router, Turn
from bots.dialog.screens import Button
from core.services.programs import merchant_and_program

router = Router("menu")
SIGNS = {"RUB": "₽", "BYN": "Br", "KZT": "₸", "UAH": "₴", "USD": "$", "EUR": "€", "AMD": "֏",
         "GEL": "₾"}


def menu_rows(turn: Turn) -> list[list[Button]]:
    b = turn.button
    return [
        [b("menu.card", "card"), b("menu.balance", "balance")],
        [b("menu.tier", "tier"), b("menu.history", "history")],
        [b("menu.promotions", "promo"), b("menu.invite", "invite")],
        [b("menu.review", "review"), b("menu.chat", "chat")],
        [b("menu.profile", "profile")],
    ]


async def show_menu(turn: Turn, *, edit: bool = False) -> None:
    """The main menu of a registered customer (Card, Balance, Tier, History, ...)."""
    turn.account.go(None)
    turn.say("menu.title", buttons=menu_rows(turn), edit=edit)


@router.action("menu")
async def on_menu(turn: Turn) -> None:
    await show_menu(turn)


def back_row(turn: Turn) -> list[Button]:
    """The "Menu" button under a screen."""
    return [turn.button("menu.back", "menu")]


async def local_date(turn: Turn, iso: str | None) -> str:
    """An ISO time of the core as a day in the merchant's time zone, "31.12.2026"."""
    if not iso:
        return ""
    merchant, _program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(merchant.timezone))
    return at.strftime("%d.%m.%Y")


async def currency_sign(turn: Turn) -> str:
    """How money of this merchant is written after an amount: "₽", "$", or the ISO code."""
    merchant, _program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    return SIGNS.get(merchant.currency, merchant.currency)
