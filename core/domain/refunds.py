"""Refunds: which part of each line goes back, and the points that follow it.

Points follow the money cumulatively: after refunding `r` of a line worth `w`,
floor(points * r / w) has been moved in total, so partial refunds never drift and
a full refund moves exactly everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.money import allocate
from core.errors import NotFound, RefundExceedsPurchase


@dataclass(frozen=True)
class LineState:
    line_id: str
    amount_minor: int
    refunded_minor: int
    price_minor: int | None = None

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.refunded_minor


@dataclass(frozen=True)
class LineRequest:
    line_id: str
    quantity: int | None = None
    amount_minor: int | None = None


def cumulative_delta(value: int, before: int, after: int, whole: int, step: int = 1) -> int:
    """How much of `value` moves when the refunded part of `whole` grows from before to after.

    In multiples of `step` (a whole-point program moves whole points); a full refund
    still moves all of `value` when `value` is a multiple of `step`.
    """
    if whole <= 0:
        return 0

    def moved(part: int) -> int:
        return value * part // whole // step * step if part < whole else value

    return moved(after) - moved(before)


def plan_refund(
    lines: list[LineState],
    amount_minor: int | None = None,
    requests: list[LineRequest] | None = None,
) -> dict[str, int]:
    """Money refunded per line for a refund by amount, by lines, or in full (neither)."""
    by_id = {line.line_id: line for line in lines}
    if requests:
        plan: dict[str, int] = {}
        for req in requests:
            line = by_id.get(req.line_id)
            if line is None:
                raise NotFound(f"line {req.line_id!r} is not on this receipt", line_id=req.line_id)
            if req.amount_minor is not None:
                part = req.amount_minor
            elif req.quantity is not None and line.price_minor is not None:
                part = line.price_minor * req.quantity
            else:
                part = line.refundable_minor
            plan[line.line_id] = plan.get(line.line_id, 0) + part
        for line_id, part in plan.items():
            if part <= 0 or part > by_id[line_id].refundable_minor:
                raise RefundExceedsPurchase(
                    f"line {line_id!r}: refund is more than what is left to refund",
                    line_id=line_id,
                )
        return plan
    left = sum(line.refundable_minor for line in lines)
    if amount_minor is None:
        amount_minor = left
    if amount_minor <= 0 or amount_minor > left:
        raise RefundExceedsPurchase("refund is more than what is left to refund on this receipt")
    parts = allocate(amount_minor, [line.refundable_minor for line in lines])
    return {line.line_id: part for line, part in zip(lines, parts, strict=True) if part}
