"""Flow: Promotions — the merchant's program in plain words (bots.dialog.program_text)."""

from __future__ import annotations

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row
from bots.dialog.program_text import program_text
from core.services.programs import merchant_and_program

router = Router("promotions")


@router.action("promo")
async def show_promotions(turn: Turn) -> None:
    turn.account.go(None)
    _merchant, program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    turn.say("promotions.text", buttons=[back_row(turn)],
             program=program_text(program, turn.texts.locale))
