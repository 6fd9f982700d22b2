"""Merchants: creation with the default program, look-up, and encrypted secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Merchant, MerchantSecret, ProgramVersion
from core.domain.program import default_program
from core.errors import Conflict, MerchantNotFound, ValidationFailed
from core.ids import new_id
from core.services import jobs
from core.services.context import CoreContext

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
RESERVED_SLUGS = frozenset(
    {"api", "app", "chat", "console", "wallet", "webhooks", "healthz", "metrics", "static", "admin"}
)
CURRENCIES = frozenset({"RUB", "BYN", "KZT", "UAH", "USD", "EUR", "AMD", "UZS", "KGS", "GEL"})


@dataclass(frozen=True)
class NewMerchant:
    name: str
    slug: str
    timezone: str = "Europe/Moscow"
    currency: str = "RUB"
    country: str = "RU"
    legal_name: str | None = None
    privacy_policy_url: str | None = None


def _legal(legal_name: str | None, privacy_policy_url: str | None) -> tuple[str | None, str | None]:
    """Who processes the data and where the policy is: named on the consent screen (152-FZ)."""
    name = legal_name.strip() if legal_name else None
    url = privacy_policy_url.strip() if privacy_policy_url else None
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValidationFailed(f"privacy policy URL {url!r} must start with https://")
    if name is not None and not 2 <= len(name) <= 300:
        raise ValidationFailed("legal name must be 2 to 300 characters")
    return name, url


async def update_merchant(ctx: CoreContext, slug: str, *, name: str | None = None,
                          legal_name: str | None = None,
                          privacy_policy_url: str | None = None) -> Merchant:
    """Change what customers read about the merchant: its name, legal entity and policy link."""
    legal, url = _legal(legal_name, privacy_policy_url)
    async with ctx.uow() as uow:
        merchant = await merchant_by_slug(uow.session, slug)
        if name is not None:
            if not name.strip():
                raise ValidationFailed("name must not be empty")
            merchant.name = name.strip()
        if legal is not None:
            merchant.legal_name = legal
        if url is not None:
            merchant.privacy_policy_url = url
        await uow.commit()
    return merchant


async def create_merchant(ctx: CoreContext, cmd: NewMerchant) -> Merchant:
    """Create a merchant with the default program (version 1) and its recurring jobs."""
    if not SLUG.match(cmd.slug) or cmd.slug in RESERVED_SLUGS:
        raise ValidationFailed(
            f"slug {cmd.slug!r}: use 2-63 lowercase letters, digits or '-', not a reserved word"
        )
    try:
        ZoneInfo(cmd.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"timezone {cmd.timezone!r} is not a known time zone") from exc
    if cmd.currency not in CURRENCIES:
        raise ValidationFailed(f"currency {cmd.currency!r} is not supported")
    if not cmd.name.strip():
        raise ValidationFailed("name must not be empty")
    legal_name, policy_url = _legal(cmd.legal_name, cmd.privacy_policy_url)
    now = ctx.now()
    async with ctx.uow() as uow:
        exists = await uow.session.scalar(select(Merchant.id).where(Merchant.slug == cmd.slug))
        if exists:
            raise Conflict(f"merchant {cmd.slug!r} already exists")
        merchant = Merchant(
            id=new_id("mer"),
            slug=cmd.slug,
            name=cmd.name.strip(),
            timezone=cmd.timezone,
            currency=cmd.currency,
            country=cmd.country,
            legal_name=legal_name,
            privacy_policy_url=policy_url,
            program_version=1,
            created_at=now,
        )
        uow.session.add(merchant)
        uow.session.add(
            ProgramVersion(
                id=new_id("prg"),
                merchant_id=merchant.id,
                version=1,
                document=default_program().model_dump(mode="json"),
                created_at=now,
            )
        )
        await uow.session.flush()
        await jobs.schedule_recurring(uow.session, merchant, now)
        await uow.commit()
    return merchant


async def merchant_by_slug(session: AsyncSession, slug: str) -> Merchant:
    merchant = await session.scalar(select(Merchant).where(Merchant.slug == slug))
    if merchant is None:
        raise MerchantNotFound(f"no merchant {slug!r}")
    return merchant


async def get_merchant(ctx: CoreContext, slug: str) -> Merchant:
    async with ctx.db.read() as session:
        return await merchant_by_slug(session, slug)


async def set_secret(ctx: CoreContext, merchant_id: str, name: str, value: str) -> None:
    """Store a merchant secret encrypted with a key derived from SECRET_KEY."""
    async with ctx.uow() as uow:
        row = await uow.session.scalar(
            select(MerchantSecret).where(
                MerchantSecret.merchant_id == merchant_id, MerchantSecret.name == name
            )
        )
        if row is None:
            row = MerchantSecret(id=new_id("sec"), merchant_id=merchant_id, name=name)
            uow.session.add(row)
        row.ciphertext = ctx.secrets.encrypt(value)
        row.updated_at = ctx.now()
        await uow.commit()


async def get_secret(ctx: CoreContext, merchant_id: str, name: str) -> str | None:
    async with ctx.db.read() as session:
        cipher = await session.scalar(
            select(MerchantSecret.ciphertext).where(
                MerchantSecret.merchant_id == merchant_id, MerchantSecret.name == name
            )
        )
    return None if cipher is None else ctx.secrets.decrypt(cipher)
