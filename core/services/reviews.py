"""Reviews: an NPS score (0-10) with an optional comment, and the program's review bonus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.db.models import Review
from core.errors import ValidationFailed
from core.ids import new_id
from core.services.context import CoreContext
from core.services.customers import get_customer
from core.services.rewards import credit_review_bonus
from core.services.views import iso

MAX_COMMENT = 4000


@dataclass(frozen=True)
class ReviewSaved:
    review_id: str
    bonus_cp: int  # the review bonus credited for it (0: none, or already taken once)


async def leave_review(ctx: CoreContext, merchant_id: str, customer_id: str, score: int,
                       comment: str | None, channel: str) -> ReviewSaved:
    """Save a review, then credit the review bonus as the program's rules allow (once, tiers)."""
    if not 0 <= score <= 10:
        raise ValidationFailed("score must be from 0 to 10", field="score")
    comment = (comment or "").strip()[:MAX_COMMENT] or None
    async with ctx.uow() as uow:
        await get_customer(uow.session, merchant_id, customer_id)
        review = Review(id=new_id("rev"), merchant_id=merchant_id, customer_id=customer_id,
                        score=score, comment=comment, channel=channel, created_at=ctx.now())
        uow.session.add(review)
        uow.emit(merchant_id, "ReviewLeft",
                 {"customer_id": customer_id, "review_id": review.id, "score": score},
                 occurred_at=ctx.now(), now=ctx.now(), customer_id=customer_id)
        await uow.commit()
    # The bonus has its own transaction and a unique ledger key, so a retry never pays twice.
    bonus = await credit_review_bonus(ctx, merchant_id, customer_id, review.id)
    return ReviewSaved(review.id, bonus)


async def customer_reviews(ctx: CoreContext, merchant_id: str, customer_id: str) -> list[dict[str, Any]]:
    async with ctx.db.read() as session:
        rows = await session.scalars(select(Review).where(
            Review.merchant_id == merchant_id, Review.customer_id == customer_id).order_by(Review.id))
        return [review_json(r) for r in rows]


def review_json(review: Review) -> dict[str, Any]:
    return {"id": review.id, "score": review.score, "comment": review.comment,
            "channel": review.channel, "created_at": iso(review.created_at)}
