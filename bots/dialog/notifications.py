"""Notifications: core events from the outbox turned into messages on the customer's messenger.

One notice goes to one account: the customer's most recently seen one that has not
blocked its bot (see core.services.notices) — the messenger they use now, not every
messenger they ever linked. Texts are in that account's locale, with the merchant's
currency name.

When: what the customer caused just now (a purchase, a redemption code) goes at once
at any hour. Reminders and timed notices nobody is waiting for (points expiring,
pending points activated, a scheduled bonus, a tier changed, a friend's purchase)
and marketing wait out the quiet hours (the merchant's time zone) via `not_before`.
Marketing also needs the advertising consent (`allowed`). A sale is one message:
points spent, earned, a first-purchase bonus and the new balance together.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError

from bots.dialog.texts import Texts, catalogue
from core.errors import ConfigurationError
from core.ports import SmsFailed, SmsGateway
from core.services.context import CoreContext
from core.services.notices import Recipient, may_advertise, recipient, recipients, sale_figures
from core.services.outbox import StoredEvent
from core.services.outgoing import MARKETING, REPLY, SERVICE, NewOutgoing, enqueue

log = logging.getLogger("kartochka.notifications")
# Bonuses the customer is told of where they get them (welcome screen, review reply, the sale).
TOLD_ELSEWHERE = frozenset({"welcome", "referral_friend", "review"})


def quiet_until(at: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """The end of the quiet hours `at` falls in (local `start` to `end`), or None outside them."""
    local = at.astimezone(tz)
    now = local.time()
    overnight = start > end
    quiet = (now >= start or now < end) if overnight else (start <= now < end)
    if not quiet:
        return None
    day = local.date() + timedelta(days=1) if overnight and now >= start else local.date()
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)


class Notifications:
    """The outbox consumer "notifications": one event in, at most one message queued."""

    def __init__(self, ctx: CoreContext, sms: SmsGateway, quiet_start: time,
                 quiet_end: time) -> None:
        self.ctx = ctx
        self.sms = sms
        self.quiet_start = quiet_start
        self.quiet_end = quiet_end
        self.handlers: dict[str, Callable[[StoredEvent, Recipient], Awaitable[None]]] = {
            "PurchaseRegistered": self.purchase,
            "PointsActivated": self.activated,
            "TierChanged": self.tier_changed,
            "PointsExpiringSoon": self.expiring,
            "BonusCredited": self.bonus,
            "ReferralRewarded": self.referral,
            "RedemptionCodeIssued": self.redemption_code,
        }
        self._recipients: dict[tuple[str, str], Recipient | None] = {}  # of the batch in hand

    def _addressee(self, event: StoredEvent) -> str | None:
        """The customer an event would be told to, when it is one we tell anyone of."""
        if event.type not in self.handlers:
            return None
        customer_id = (event.payload or {}).get("customer_id") or event.customer_id
        return str(customer_id) if customer_id else None

    async def prepare(self, events: list[StoredEvent]) -> None:
        """Find the recipients of a whole batch of events in two queries (the drain keeps up)."""
        wanted = {(event.merchant_id, customer_id) for event in events
                  if (customer_id := self._addressee(event)) is not None}
        self._recipients = await recipients(self.ctx, wanted) if wanted else {}

    async def handle(self, event: StoredEvent) -> None:
        """Queue the message one event causes (most events cause none)."""
        customer_id = self._addressee(event)
        if customer_id is None:
            return
        handler = self.handlers[event.type]
        key = (event.merchant_id, customer_id)
        found = self._recipients[key] if key in self._recipients else \
            await recipient(self.ctx, event.merchant_id, customer_id)
        if found is None:
            return
        if found.account_id is None and event.type != "RedemptionCodeIssued":
            return  # no messenger to tell (only a redemption code falls back to an SMS)
        try:
            await handler(event, found)
        except (KeyError, ValueError, TypeError, ArithmeticError, TemplateError,
                ConfigurationError):
            # A malformed event must not hold up every later notice (the outbox would
            # retry it forever); a database error still propagates and is retried.
            log.exception("notification skipped: cannot make it from this event",
                          extra={"event_id": event.id, "event_type": event.type,
                                 "merchant_id": event.merchant_id})

    def texts(self, to: Recipient) -> Texts:
        currency = to.program.currency
        return Texts(to.locale, currency.en if to.locale == "en" else currency.ru)

    async def allowed(self, to: Recipient, priority: int) -> bool:
        """Marketing only with the advertising consent; everything else always."""
        return priority != MARKETING or await may_advertise(self.ctx, to.merchant_id,
                                                           to.customer_id)

    async def queue(self, event: StoredEvent, to: Recipient, name: str, *,
                    priority: int = SERVICE, quiet: bool = False, **context: Any) -> bool:
        """Queue the text `notify.<name>` for the recipient's account; False when there is none."""
        if to.account_id is None or to.bot_id is None or to.chat_id is None:
            return False
        if not await self.allowed(to, priority):
            return False
        now = self.ctx.now()
        later = quiet_until(now, ZoneInfo(to.timezone), self.quiet_start,
                            self.quiet_end) if quiet or priority == MARKETING else None
        text = self.texts(to)(f"notify.{name}", **context)
        await enqueue(self.ctx, [NewOutgoing(
            merchant_id=to.merchant_id, bot_id=to.bot_id, channel_account_id=to.account_id,
            chat_id=to.chat_id, body={"text": text}, priority=priority, kind=f"notify.{name}",
            not_before=later, key=f"notify:{event.id}:{to.account_id}")])
        return True

    def local(self, to: Recipient, value: datetime | str) -> datetime:
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return at.astimezone(ZoneInfo(to.timezone))

    async def purchase(self, event: StoredEvent, to: Recipient) -> None:
        figures = await sale_figures(self.ctx, event.merchant_id, event.payload["purchase_id"])
        if figures is None or not (figures.accrued or figures.redeemed or figures.bonus):
            return
        await self.queue(event, to, "purchase", redeemed=figures.redeemed, accrued=figures.accrued,
                         bonus=figures.bonus, balance=figures.balance, pending=figures.pending,
                         available_at=self.local(to, figures.available_at)
                         if figures.available_at else None)

    async def activated(self, event: StoredEvent, to: Recipient) -> None:
        await self.queue(event, to, "activated", quiet=True, amount=Decimal(event.payload["points"]),
                         balance=to.available)

    async def tier_changed(self, event: StoredEvent, to: Recipient) -> None:
        tiers = [tier.id for tier in to.program.tiers]
        names = {tier.id: tier.name for tier in to.program.tiers}
        new, old = event.payload["to"], event.payload.get("from")
        if new not in names:
            return
        up = old not in tiers or tiers.index(new) > tiers.index(old)
        # Not a reminder: usually the answer to a purchase just made (the issue: quiet hours
        # delay only reminders and marketing).
        await self.queue(event, to, "tier_up" if up else "tier_down", tier=names[new])

    async def expiring(self, event: StoredEvent, to: Recipient) -> None:
        await self.queue(event, to, "expiring", quiet=True, amount=Decimal(event.payload["points"]),
                         day=self.local(to, event.payload["expires_at"]).date())

    async def bonus(self, event: StoredEvent, to: Recipient) -> None:
        mechanic = event.payload.get("mechanic") or "other"
        if mechanic in TOLD_ELSEWHERE:
            return
        reason = f"bonus_reason.{mechanic}"
        await self.queue(event, to, "bonus", quiet=True, amount=Decimal(event.payload["points"]),
                         balance=to.available,
                         reason=self.texts(to)(f"notify.{reason}")
                         if f"notify.{reason}" in catalogue("ru") else None)

    async def referral(self, event: StoredEvent, to: Recipient) -> None:
        await self.queue(event, to, "referral", quiet=True, amount=Decimal(event.payload["points"]),
                         level=int(event.payload.get("level") or 1), balance=to.available)

    async def redemption_code(self, event: StoredEvent, to: Recipient) -> None:
        """The code a till asks for: at once, as a reply; by SMS when no messenger is reachable."""
        expires = self.local(to, event.payload["expires_at"])
        if expires <= self.ctx.now():
            return  # the till has given up on it already
        context: dict[str, Any] = {
            "code": self.ctx.secrets.decrypt(event.payload["code_sealed"]),
            "amount": Decimal(event.payload["redeem"]), "until": expires}
        if await self.queue(event, to, "redemption_code", priority=REPLY, **context):
            return
        if not to.phone:
            log.warning("no way to send a redemption code",
                        extra={"merchant_id": to.merchant_id, "customer_id": to.customer_id})
            return
        try:
            await self.sms.send(to.merchant_id, to.phone,
                                self.texts(to)("notify.redemption_code_sms", **context))
        except SmsFailed as exc:  # the till sees no code arrive and may ask again
            log.warning("redemption code SMS failed: %s", exc,
                        extra={"merchant_id": to.merchant_id, "customer_id": to.customer_id})
