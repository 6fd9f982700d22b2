"""Flow: the profile — name, birthday, gender, advertising consent, export and deletion of data.

Actions: "profile" (the screen), "profile:name" / "profile:birthday" (then typed input),
"profile:gender" then "profile:g_m|g_f|g_x", "profile:ads_on|ads_off", "profile:export",
"profile:delete" then "profile:delete_yes".
"""

from __future__ import annotations

import json
from typing import Any

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row
from bots.dialog.screens import Button
from core.errors import InvalidBirthDate, InvalidName
from core.services import registration
from core.services.consents import ADVERTISING, record_consent
from core.services.profile import anonymise_customer, export_customer, profile_of
from core.services.programs import merchant_and_program

router = Router("profile")
FLOW = "profile"
CHUNK = 4000  # characters of the export per message (platforms allow 4096)
GENDERS = {"g_m": "m", "g_f": "f", "g_x": None}


def _customer(turn: Turn) -> str:
    assert turn.account.customer_id is not None
    return turn.account.customer_id


async def show_profile(turn: Turn, *, edit: bool = False) -> None:
    turn.account.go(None)
    profile = await profile_of(turn.ctx, turn.account.merchant_id, _customer(turn))
    b = turn.button
    ads = "profile:ads_off" if profile["advertising"] else "profile:ads_on"
    rows: list[list[Button]] = [
        [b("profile.edit_name", "profile:name"), b("profile.edit_birthday", "profile:birthday")],
        [b("profile.edit_gender", "profile:gender"),
         b("profile.ads_button", ads, on=profile["advertising"])],
        [b("profile.export", "profile:export"), b("profile.delete", "profile:delete")],
        back_row(turn),
    ]
    born = profile["birth_date"]
    turn.say("profile.text", buttons=rows, edit=edit, name=profile["name"],
             birthday=born.strftime("%d.%m.%Y") if born else None, gender=profile["gender"],
             advertising=profile["advertising"])


@router.action("profile")
async def on_profile(turn: Turn) -> None:
    arg = turn.arg
    handler = ACTIONS.get(arg.split("_")[0] if arg.startswith("g_") else arg)
    if handler is None:
        await show_profile(turn, edit=bool(arg))
    else:
        await handler(turn)


async def ask_name(turn: Turn) -> None:
    turn.account.go(FLOW, "name")
    turn.say("profile.ask_name", buttons=[[turn.button("profile.cancel", "profile")]])


async def ask_birthday(turn: Turn) -> None:
    turn.account.go(FLOW, "birthday")
    turn.say("profile.ask_birthday", buttons=[[turn.button("profile.cancel", "profile")]])


async def ask_gender(turn: Turn) -> None:
    b = turn.button
    turn.say("profile.ask_gender", edit=True, buttons=[
        [b("profile.gender_m", "profile:g_m"), b("profile.gender_f", "profile:g_f")],
        [b("profile.gender_x", "profile:g_x")], [b("profile.cancel", "profile")]])


async def set_gender(turn: Turn) -> None:
    if turn.arg not in GENDERS:
        turn.toast("common.outdated_button")
        return
    await registration.set_gender(turn.ctx, turn.account.merchant_id, _customer(turn), GENDERS[turn.arg])
    turn.toast("profile.saved")
    await show_profile(turn, edit=True)


async def set_ads(turn: Turn, granted: bool) -> None:
    await record_consent(turn.ctx, turn.account.merchant_id, ADVERTISING, granted,
                         text_version=f"{turn.texts('profile.ads_version')}/{turn.texts.locale}",
                         channel=turn.account.channel, account_id=turn.account.id,
                         customer_id=_customer(turn))
    turn.toast("profile.ads_on_done" if granted else "profile.ads_off_done")
    await show_profile(turn, edit=True)


async def ads_on(turn: Turn) -> None:
    await set_ads(turn, True)


async def ads_off(turn: Turn) -> None:
    await set_ads(turn, False)


def export_parts(document: dict[str, Any], size: int = CHUNK) -> list[str]:
    """The export as JSON text, cut at line ends into messages of at most `size` characters."""
    parts: list[str] = []
    current = ""
    for line in json.dumps(document, ensure_ascii=False, indent=1).splitlines(keepends=True):
        while len(line) > size:  # one very long value: cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:size])
            line = line[size:]
        if len(current) + len(line) > size:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    return parts


async def export(turn: Turn) -> None:
    """Everything we hold, as JSON text messages (a Screen carries no file attachment)."""
    document = await export_customer(turn.ctx, turn.account.merchant_id, _customer(turn))
    parts = export_parts(document)
    turn.say("profile.export_intro", parts=len(parts), purchases=len(document["purchases"]),
             ledger=len(document["ledger"]), messages=len(document["messages"]),
             reviews=len(document["reviews"]))
    for n, part in enumerate(parts, start=1):
        turn.say("profile.export_part", part=part, n=n, total=len(parts),
                 buttons=[back_row(turn)] if n == len(parts) else ())


async def ask_delete(turn: Turn) -> None:
    merchant, _program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    b = turn.button
    turn.say("profile.delete_confirm", edit=True, merchant=merchant.name, buttons=[
        [b("profile.delete_yes", "profile:delete_yes")], [b("profile.delete_no", "profile")]])


async def delete(turn: Turn) -> None:
    await anonymise_customer(turn.ctx, turn.account.merchant_id, _customer(turn),
                             channel=turn.account.channel)
    turn.account.customer_id = None
    turn.account.go(None)
    turn.say("profile.deleted", edit=True,
             buttons=[[turn.button("profile.register_again", "register")]])


ACTIONS = {"name": ask_name, "birthday": ask_birthday, "gender": ask_gender, "g": set_gender,
           "ads_on": ads_on, "ads_off": ads_off, "export": export, "delete": ask_delete,
           "delete_yes": delete}


@router.input(FLOW)
async def on_input(turn: Turn) -> None:
    """The typed name or birthday; anything else returns to the profile."""
    text = turn.event.text or ""
    retry = [[turn.button("profile.cancel", "profile")]]
    if turn.account.step == "name":
        try:
            await registration.set_name(turn.ctx, turn.account.merchant_id, _customer(turn), text)
        except InvalidName as exc:
            turn.say(f"profile.bad_name_{exc.details.get('reason', 'empty')}", buttons=retry)
            return
    elif turn.account.step == "birthday":
        try:
            born = registration.parse_birth_date(text, turn.ctx.now().date())
        except InvalidBirthDate as exc:
            turn.say(f"profile.bad_birthday_{exc.details.get('reason', 'format')}", buttons=retry)
            return
        await registration.set_birth_date(turn.ctx, turn.account.merchant_id, _customer(turn), born)
    turn.say("profile.saved_screen")
    await show_profile(turn)
