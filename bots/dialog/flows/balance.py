"""Flows: the balance (available, pending, expiring, debt) and the tier (rate, the next one)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row, currency_sign, local_date
from core.services.customers import customer_answer
from core.services.programs import merchant_and_program

router = Router("balance")
SHOWN = 5  # pending and expiring lines at most


async def _lots(turn: Turn, lots: list[dict[str, Any]], when: str) -> list[dict[str, Any]]:
    return [{"amount": Decimal(lot["amount"]), "date": await local_date(turn, lot[when])}
            for lot in lots[:SHOWN]]


@router.action("balance")
async def show_balance(turn: Turn) -> None:
    assert turn.account.customer_id is not None
    turn.account.go(None)
    answer = await customer_answer(turn.ctx, turn.account.merchant_id, turn.account.customer_id)
    balance = answer["balance"]
    turn.say("balance.text", buttons=[back_row(turn)],
             available=Decimal(balance["available"]), pending=Decimal(balance["pending"]),
             pending_lots=await _lots(turn, balance["pending_lots"], "available_at"),
             expiring=await _lots(turn, balance["expiring"], "expires_at"),
             debt=Decimal(balance["debt"]))


@router.action("tier")
async def show_tier(turn: Turn) -> None:
    assert turn.account.customer_id is not None
    turn.account.go(None)
    answer = await customer_answer(turn.ctx, turn.account.merchant_id, turn.account.customer_id)
    _merchant, program = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    tier = answer["tier"]
    rule = program.tier(tier["id"])
    nxt = tier["next"] or {}
    turn.say("balance.tier", buttons=[back_row(turn)],
             name=tier["name"], percent=Decimal(tier["accrual_percent"]),
             per_amount=rule.points_per.amount if rule.points_per else None,
             per_points=rule.points_per.points if rule.points_per else None,
             discount=rule.discount_percent, accrues=program.accrues,
             next_name=nxt.get("name"),
             next_spend=Decimal(nxt["remaining_spend"]) if nxt.get("remaining_spend") else None,
             next_purchases=nxt.get("remaining_purchases"),
             basis=program.tier_rules.basis, money=await currency_sign(turn))
