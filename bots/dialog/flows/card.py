"""Flow: the card — a PNG with the QR of the card number, the balance and the tier."""

from __future__ import annotations

from decimal import Decimal

from bots.dialog.card_image import render_card
from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row
from bots.dialog.screens import Image
from core.services.customers import customer_answer
from core.services.programs import merchant_and_program

router = Router("card")


@router.action("card")
async def show_card(turn: Turn) -> None:
    assert turn.account.customer_id is not None
    turn.account.go(None)
    answer = await customer_answer(turn.ctx, turn.account.merchant_id, turn.account.customer_id)
    number = answer["card_number"]
    if number is None:
        turn.say("card.none", buttons=[back_row(turn)])
        return
    merchant, _program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    available = Decimal(answer["balance"]["available"])
    tier = answer["tier"]["name"]
    png = render_card(number, merchant=merchant.name,
                      balance=turn.texts("card.image_balance", amount=available),
                      tier=turn.texts("card.image_tier", tier=tier),
                      caption=turn.texts("card.image_caption"))
    turn.say("card.text", image=Image(filename="card.png", data=png), buttons=[back_row(turn)],
             number=number, amount=available, tier=tier)
