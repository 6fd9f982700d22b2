"""Program versions: the current document of a merchant, loading a new one."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Customer, Merchant, ProgramVersion
from core.domain.program import Program, parse_program
from core.errors import InvalidProgram, MerchantNotFound
from core.ids import new_id
from core.services.context import CoreContext

# Versions never change once written, so a parsed document is cached for good.
_CACHE: dict[tuple[str, int], Program] = {}
# Merchants change rarely (a new program version); other processes see a change within this.
MERCHANT_TTL = 2.0
_MERCHANTS: dict[str, tuple[float, Merchant]] = {}


async def merchant_snapshot(session: AsyncSession, merchant_id: str) -> Merchant:
    """The merchant row, detached and cached for MERCHANT_TTL seconds (the sale hot path)."""
    hit = _MERCHANTS.get(merchant_id)
    if hit is not None and time.monotonic() - hit[0] < MERCHANT_TTL:
        return hit[1]
    merchant = await session.get(Merchant, merchant_id)
    if merchant is None:
        raise MerchantNotFound("no such merchant")
    session.expunge(merchant)
    _MERCHANTS[merchant_id] = (time.monotonic(), merchant)
    return merchant


async def program_version(session: AsyncSession, merchant_id: str, version: int) -> Program:
    key = (merchant_id, version)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    document = await session.scalar(
        select(ProgramVersion.document).where(
            ProgramVersion.merchant_id == merchant_id, ProgramVersion.version == version
        )
    )
    if document is None:
        raise InvalidProgram(f"program version {version} is missing")
    program = parse_program(document)
    _CACHE[key] = program
    return program


async def current_program(session: AsyncSession, merchant: Merchant) -> Program:
    return await program_version(session, merchant.id, merchant.program_version)


def validate_document(document: Any) -> Program:
    """Parse a program document; InvalidProgram lists each failing field."""
    if not isinstance(document, dict):
        raise InvalidProgram("the program document must be an object")
    try:
        return parse_program(document)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(document)", "message": err["msg"]}
            for err in exc.errors()
        ]
        first = errors[0]
        raise InvalidProgram(f"{first['field']}: {first['message']}", errors=errors) from exc


async def put_program(ctx: CoreContext, merchant_id: str, document: Any) -> tuple[int, Program]:
    """Validate and store a new program version; customers on removed tiers move to the first."""
    program = validate_document(document)
    async with ctx.uow() as uow:
        merchant = await uow.session.get(Merchant, merchant_id, with_for_update=True)
        assert merchant is not None
        version = merchant.program_version + 1
        uow.session.add(
            ProgramVersion(
                id=new_id("prg"),
                merchant_id=merchant_id,
                version=version,
                document=program.model_dump(mode="json"),
                created_at=ctx.now(),
            )
        )
        merchant.program_version = version
        _MERCHANTS.pop(merchant_id, None)
        tier_ids = [t.id for t in program.tiers]
        customers = await uow.session.scalars(
            select(Customer).where(
                Customer.merchant_id == merchant_id, Customer.tier_id.not_in(tier_ids)
            )
        )
        for customer in customers:
            old, customer.tier_id = customer.tier_id, program.start_tier().id
            uow.emit(merchant_id, "TierChanged",
                     {"customer_id": customer.id, "from": old, "to": customer.tier_id},
                     occurred_at=ctx.now(), now=ctx.now(), customer_id=customer.id)
        uow.emit(
            merchant_id,
            "ProgramChanged",
            {"version": version},
            occurred_at=ctx.now(),
            now=ctx.now(),
        )
        await uow.commit()
    return version, program


async def program_document(ctx: CoreContext, merchant_id: str) -> tuple[int, dict[str, Any]]:
    """(version, document) of the merchant's current program."""
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, merchant_id)
        assert merchant is not None
        program = await current_program(session, merchant)
        return merchant.program_version, program.model_dump(mode="json")


async def merchant_and_program(ctx: CoreContext, merchant_id: str) -> tuple[Merchant, Program]:
    """The merchant (cached snapshot) and its current program, for readers outside a sale."""
    hit = _MERCHANTS.get(merchant_id)
    if hit is not None and time.monotonic() - hit[0] < MERCHANT_TTL:
        program = _CACHE.get((merchant_id, hit[1].program_version))
        if program is not None:  # both in memory: no session to open
            return hit[1], program
    async with ctx.db.read() as session:
        merchant = await merchant_snapshot(session, merchant_id)
        return merchant, await current_program(session, merchant)
