"""Flow: a review — an NPS score 0-10 by buttons, then a comment or "skip"; the review bonus."""

from __future__ import annotations

from decimal import Decimal

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row
from core.domain.money import from_minor
from core.services.reviews import leave_review

router = Router("review")
FLOW = "review"


@router.action("review")
async def on_review(turn: Turn) -> None:
    """"review": ask for the score; "review:<0-10>": ask for a comment; "review:skip": save."""
    arg = turn.arg
    if arg == "skip" and turn.account.flow == FLOW and "score" in turn.account.data:
        await _save(turn, None)
    elif arg.isdigit() and 0 <= int(arg) <= 10:
        turn.account.go(FLOW, "comment", score=int(arg))
        turn.say("review.comment", buttons=[[turn.button("review.skip", "review:skip")]],
                 edit=True, score=int(arg))
    else:
        scores = [turn.button("review.score", f"review:{n}", n=n) for n in range(11)]
        turn.account.go(None)
        turn.say("review.ask", buttons=[scores[:6], scores[6:], back_row(turn)])


@router.input(FLOW)
async def on_comment(turn: Turn) -> None:
    text = (turn.event.text or "").strip()
    if turn.account.step != "comment" or "score" not in turn.account.data:
        turn.account.go(None)
        turn.say("review.ask_again", buttons=[back_row(turn)])
    elif not text:
        turn.say("review.text_only", buttons=[[turn.button("review.skip", "review:skip")]])
    else:
        await _save(turn, text)


async def _save(turn: Turn, comment: str | None) -> None:
    assert turn.account.customer_id is not None
    score = int(turn.account.data["score"])
    saved = await leave_review(turn.ctx, turn.account.merchant_id, turn.account.customer_id, score,
                               comment, turn.account.channel)
    turn.account.go(None)
    bonus: Decimal | None = from_minor(saved.bonus_cp) if saved.bonus_cp else None
    turn.say("review.thanks", buttons=[back_row(turn)], bonus=bonus, score=score,
             edit=turn.event.kind == "button")
