"""Registration, the last steps: name, birthday, gender (each asked only when unknown), welcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

from bots.dialog.card_image import render_card
from bots.dialog.dialog import Turn
from bots.dialog.flows.menu import show_menu
from bots.dialog.flows.registration_state import PROFILE, Step, go
from bots.dialog.screens import Image
from core import errors
from core.services import registration
from core.services.programs import merchant_and_program


async def advance(turn: Turn, after: str | None) -> None:
    """Ask the next profile question the customer has no answer to yet, or welcome them."""
    account = turn.account
    assert account.customer_id is not None
    view = await registration.welcome_view(turn.ctx, account.merchant_id, account.customer_id)
    known = {"name": view.name, "birthday": view.birth_date, "gender": view.gender}
    for step in PROFILE[PROFILE.index(after) + 1 if after else 0:]:
        if known[step] is None:
            go(turn, step)
            await ASK_PROFILE[step](turn)
            return
    await welcome(turn, view)


async def ask_name(turn: Turn, key: str = "registration.ask_name") -> None:
    turn.say(key)


async def name_typed(turn: Turn, text: str) -> None:
    assert turn.account.customer_id is not None
    try:
        await registration.set_name(turn.ctx, turn.account.merchant_id, turn.account.customer_id, text)
    except errors.InvalidName as exc:
        await ask_name(turn, f"registration.name_{exc.details['reason']}")
        return
    await advance(turn, "name")


async def ask_birthday(turn: Turn, key: str = "registration.ask_birthday") -> None:
    turn.say(key, buttons=[[turn.button("registration.skip", "reg:skip_birthday")]])


async def birthday_typed(turn: Turn, text: str) -> None:
    account = turn.account
    assert account.customer_id is not None
    merchant, _ = await merchant_and_program(turn.ctx, account.merchant_id)
    today = turn.ctx.now().astimezone(ZoneInfo(merchant.timezone)).date()
    try:
        value = registration.parse_birth_date(text, today)
    except errors.InvalidBirthDate as exc:
        await ask_birthday(turn, f"registration.birthday_{exc.details['reason']}")
        return
    await registration.set_birth_date(turn.ctx, account.merchant_id, account.customer_id, value)
    await advance(turn, "birthday")


async def ask_gender(turn: Turn) -> None:
    turn.say("registration.ask_gender", buttons=[
        [turn.button("registration.male", "reg:gender_m"),
         turn.button("registration.female", "reg:gender_f")],
        [turn.button("registration.skip", "reg:gender_skip")]])


def _gender(value: str | None) -> Step:
    async def choose(turn: Turn) -> None:
        assert turn.account.customer_id is not None
        if value is not None:
            await registration.set_gender(turn.ctx, turn.account.merchant_id,
                                          turn.account.customer_id, value)
        await advance(turn, "gender")
    return choose


async def welcome(turn: Turn, view: registration.WelcomeView) -> None:
    """The welcome screen with the card and the bonus, then the menu."""
    merchant, _ = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    balance: Decimal = view.available + view.pending
    image = None
    if view.card_number:
        t = turn.texts
        image = Image(filename="card.png", data=render_card(
            view.card_number, merchant=merchant.name, caption=t("registration.card_caption"),
            balance=t("registration.card_balance", amount=balance),
            tier=t("registration.card_tier", tier=view.tier_name)))
    turn.say("registration.welcome", image=image, new=bool(turn.account.data.get("new")),
             name=view.name, card=view.card_number, merchant=merchant.name, amount=balance,
             available=view.available, pending=view.pending, later=view.first_purchase_bonus)
    turn.account.go(None)
    await show_menu(turn)




ASK_PROFILE: dict[str, Step] = {"name": ask_name, "birthday": ask_birthday, "gender": ask_gender}
TYPED_PROFILE: dict[str, Callable[[Turn, str], Awaitable[None]]] = {
    "name": name_typed, "birthday": birthday_typed,
}
BUTTONS_PROFILE: dict[tuple[str | None, str], Step] = {
    ("birthday", "skip_birthday"): partial(advance, after="birthday"),
    ("gender", "gender_m"): _gender("m"), ("gender", "gender_f"): _gender("f"),
    ("gender", "gender_skip"): _gender(None),
}
