"""Flow: invite a friend — the personal link, its QR, and what the friend and the customer get."""

from __future__ import annotations

from typing import Any

from bots.dialog.card_image import render_qr
from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row, currency_sign
from bots.dialog.screens import Image
from core.domain.explain import describe
from core.domain.program import Program
from core.services.customers import customer_answer
from core.services.programs import merchant_and_program

router = Router("invite")


def rewards(program: Program) -> dict[str, Any]:
    """What the program promises on an invitation: the friend's welcome and gift, the
    customer's share of the friend's purchases (the first level of the referral chain)."""
    items = {item.key: item.params for item in describe(program)}
    welcome = items.get("welcome")
    referral = items.get("referral") or {}
    levels = referral.get("levels") or []
    return {
        "welcome": welcome["points"] if welcome and not welcome["tiers"] else None,
        "welcome_later": bool(welcome and welcome["on"] == "first_purchase"),
        "friend": referral.get("friend_points"),
        "level": levels[0] if levels else None,
        "by_tier": bool(referral.get("by_tier")),
        "first_only": bool(referral.get("first_only")),
    }


@router.action("invite")
async def show_invite(turn: Turn) -> None:
    assert turn.account.customer_id is not None
    turn.account.go(None)
    answer = await customer_answer(turn.ctx, turn.account.merchant_id, turn.account.customer_id)
    code = answer["referral_code"]
    link = await turn.deps.deep_link(turn.account.bot_id, "ref_" + code)
    _merchant, program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    image = None
    if link:
        image = Image(filename="invite.png", data=render_qr(link))
    turn.say("invite.text", image=image, buttons=[back_row(turn)], link=link, code=code,
             money=await currency_sign(turn), **rewards(program))
