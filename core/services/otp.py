"""One-time SMS codes that prove a phone: sent through the SmsGateway, only an HMAC kept.

A code is bound to (merchant, phone, purpose) by its HMAC under a key derived from
SECRET_KEY, and compared in constant time. It lives 5 minutes; 5 wrong tries lock the
phone (for that purpose) for 15 minutes; a new code waits 60 s after the last; daily
caps per phone, per channel account, per merchant (and per client IP, only when a
trusted proxy vouches for it) stop SMS pumping. Codes are never logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.db.models import Merchant, PhoneCode
from core.errors import (
    CodeExpired,
    CodeLocked,
    CodeMalformed,
    CodeNotSent,
    CodeWrong,
    MerchantNotFound,
    ResendTooSoon,
    SmsCountryRefused,
    SmsLimitReached,
)
from core.ids import new_id
from core.phones import mask_phone, normalise_phone, phone_country
from core.ports import SmsFailed, SmsGateway
from core.services.context import CoreContext

log = logging.getLogger("kartochka.otp")
KEY_PURPOSE = b"kartochka:otp:v1"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class OtpPolicy:
    """Lifetimes, tries and caps; `from_settings` reads the caps an operator may change."""

    digits: int = 6
    lifetime: timedelta = timedelta(minutes=5)
    max_tries: int = 5
    lock: timedelta = timedelta(minutes=15)
    resend_gap: timedelta = timedelta(seconds=60)
    per_phone_daily: int = 5
    per_account_daily: int = 10
    per_merchant_daily: int = 1000
    per_ip_daily: int = 20
    per_merchant_hourly: int = 200
    countries: tuple[str, ...] = ()  # empty: the merchant's own country

    @classmethod
    def from_settings(cls, settings: Settings) -> OtpPolicy:
        return cls(per_phone_daily=settings.sms_daily_per_phone,
                   per_account_daily=settings.sms_daily_per_account,
                   per_merchant_daily=settings.sms_daily_per_merchant,
                   per_ip_daily=settings.sms_daily_per_ip,
                   per_merchant_hourly=settings.sms_hourly_per_merchant,
                   countries=tuple(c.upper() for c in settings.sms_countries))


@dataclass(frozen=True)
class SentCode:
    """A code is on its way to `phone` (E.164); a new one may be asked for at `resend_at`."""

    phone: str
    expires_at: datetime
    resend_at: datetime


def _digest(ctx: CoreContext, merchant_id: str, phone: str, purpose: str, code: str) -> str:
    return ctx.secrets.sign(KEY_PURPOSE, f"{merchant_id}|{phone}|{purpose}|{code}".encode())


async def send_code(
    ctx: CoreContext, sms: SmsGateway, merchant_id: str, phone: str, purpose: str,
    message: Callable[[str], str], *, account_id: str | None = None,
    client_ip: str | None = None, policy: OtpPolicy | None = None,
) -> SentCode:
    """Send a new code to `phone`; `message(code)` is the SMS text in the customer's language.

    Raises InvalidPhone, CodeLocked, ResendTooSoon, SmsLimitReached, or SmsFailed (then
    nothing counts against the caps and a retry may follow at once).
    """
    policy = policy or OtpPolicy()
    now = ctx.now()
    code = f"{secrets.randbelow(10 ** policy.digits):0{policy.digits}d}"
    async with ctx.uow() as uow:
        s = uow.session
        # One sender at a time per merchant keeps the merchant's daily cap exact.
        merchant = await s.get(Merchant, merchant_id, with_for_update=True)
        if merchant is None:
            raise MerchantNotFound("no such merchant")
        phone = normalise_phone(phone, merchant.country)
        if phone_country(phone) not in (policy.countries or (merchant.country,)):
            raise SmsCountryRefused("codes go only to numbers of the countries this merchant serves",
                                    country=phone_country(phone))
        await _check_may_send(s, merchant_id, phone, purpose, account_id, client_ip, now, policy)
        row = PhoneCode(
            id=new_id("otp"), merchant_id=merchant_id, channel_account_id=account_id, phone=phone,
            purpose=purpose, digest=_digest(ctx, merchant_id, phone, purpose, code), tries=0,
            client_ip=client_ip, created_at=now, expires_at=now + policy.lifetime)
        s.add(row)
        await uow.commit()
    where = {"merchant_id": merchant_id, "phone": mask_phone(phone), "purpose": purpose,
             "account_id": account_id}
    try:
        await sms.send(merchant_id, phone, message(code))
    except SmsFailed as exc:
        log.warning("sms code not sent: %s", exc, extra=where)
        async with ctx.uow() as uow:
            await uow.session.execute(delete(PhoneCode).where(PhoneCode.id == row.id))
            await uow.commit()
        raise
    log.info("sms code sent", extra=where)
    return SentCode(phone=phone, expires_at=now + policy.lifetime, resend_at=now + policy.resend_gap)


async def _check_may_send(
    s: AsyncSession, merchant_id: str, phone: str, purpose: str, account_id: str | None,
    client_ip: str | None, now: datetime, policy: OtpPolicy,
) -> None:
    same_phone = (PhoneCode.merchant_id == merchant_id, PhoneCode.phone == phone,
                  PhoneCode.purpose == purpose)
    locked = await s.scalar(select(func.max(PhoneCode.locked_until)).where(
        *same_phone, PhoneCode.locked_until > now))
    if locked is not None:
        raise CodeLocked("too many wrong codes for this phone", until=locked)
    last = await s.scalar(select(func.max(PhoneCode.created_at)).where(*same_phone))
    if last is not None and last + policy.resend_gap > now:
        wait = last + policy.resend_gap - now
        raise ResendTooSoon("a new code may be asked for a little later",
                            seconds=max(1, int(-(-wait.total_seconds() // 1))))
    since = now - DAY
    caps: list[tuple[str, int, ColumnElement[bool]]] = [
        ("phone", policy.per_phone_daily, PhoneCode.phone == phone),
        ("merchant", policy.per_merchant_daily, PhoneCode.merchant_id == merchant_id),
    ]
    if account_id is not None:
        caps.insert(1, ("account", policy.per_account_daily,
                        PhoneCode.channel_account_id == account_id))
    if client_ip is not None:
        caps.append(("ip", policy.per_ip_daily, PhoneCode.client_ip == client_ip))
    # A burst from one merchant's bot in an hour is pumping, not customers: cut it early.
    caps.append(("merchant_hour", policy.per_merchant_hourly, PhoneCode.created_at > now - HOUR))
    for scope, cap, condition in caps:
        count = await s.scalar(select(func.count()).select_from(PhoneCode).where(
            PhoneCode.merchant_id == merchant_id, PhoneCode.created_at > since, condition))
        if (count or 0) >= cap:
            log.warning("sms code cap reached", extra={
                "merchant_id": merchant_id, "scope": scope, "phone": mask_phone(phone),
                "account_id": account_id})
            raise SmsLimitReached(f"too many codes today ({scope})", scope=scope)


async def check_code(
    ctx: CoreContext, merchant_id: str, phone: str, purpose: str, code: str, *,
    account_id: str | None = None, policy: OtpPolicy | None = None,
) -> str:
    """The phone (E.164) when `code` is the one last sent to it; the code is then used up.

    Raises CodeMalformed (no try counted), CodeNotSent, CodeLocked, CodeExpired or
    CodeWrong (with the tries left; the last wrong try locks the phone).
    """
    policy = policy or OtpPolicy()
    typed = "".join((code or "").split())
    if len(typed) != policy.digits or not typed.isdigit():
        raise CodeMalformed(f"the code is {policy.digits} digits")
    now = ctx.now()
    async with ctx.uow() as uow:
        s = uow.session
        merchant = await s.get(Merchant, merchant_id)
        if merchant is None:
            raise MerchantNotFound("no such merchant")
        phone = normalise_phone(phone, merchant.country)
        row = await s.scalar(
            select(PhoneCode).where(PhoneCode.merchant_id == merchant_id, PhoneCode.phone == phone,
                                    PhoneCode.purpose == purpose)
            .order_by(PhoneCode.created_at.desc(), PhoneCode.id.desc()).limit(1).with_for_update())
        if row is None or row.used_at is not None or (
                account_id is not None and row.channel_account_id != account_id):
            raise CodeNotSent("no code was sent to this phone; ask for one")
        if row.locked_until is not None and row.locked_until > now:
            raise CodeLocked("too many wrong codes for this phone", until=row.locked_until)
        if row.expires_at <= now:
            raise CodeExpired("the code has expired; ask for a new one")
        if hmac.compare_digest(row.digest, _digest(ctx, merchant_id, phone, purpose, typed)):
            row.used_at = now
            await uow.commit()
            return phone
        row.tries += 1
        left = policy.max_tries - row.tries
        if left <= 0:
            row.locked_until = now + policy.lock
        await uow.commit()
    log.info("wrong sms code", extra={"merchant_id": merchant_id, "phone": mask_phone(phone),
                                      "purpose": purpose, "tries_left": max(left, 0)})
    if left <= 0:
        raise CodeLocked("too many wrong codes for this phone", until=now + policy.lock)
    raise CodeWrong("wrong code", tries_left=left)
