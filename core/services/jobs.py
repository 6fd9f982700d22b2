"""The one scheduler: timed work from the jobs table, each job idempotent by its key.

Jobs never decide a balance (an expired lot is unspendable whether or not the
expiry job has run); they record expiries, refresh cached figures and emit the
events that notices are sent from. A job runs "at" its own run_at, so
`kartochka jobs run --until T` replays time deterministically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Customer, Job, LedgerEntry, LotAllocation, Merchant
from core.domain.money import from_minor
from core.ids import new_id
from core.services import daily, dates
from core.services.context import CoreContext
from core.services.ledger import CustomerLedger
from core.services.programs import current_program
from core.services.tiers import reevaluate_tier

log = logging.getLogger("kartochka.jobs")
Handler = Callable[[CoreContext, Job], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
MAX_ATTEMPTS = 5
STUCK_AFTER = timedelta(minutes=15)


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


async def add_job(session: AsyncSession, kind: str, key: str, run_at: datetime,
                  merchant_id: str | None, payload: dict[str, Any], now: datetime) -> None:
    """Schedule a job once: a key already present (pending or done) is left alone."""
    if await session.scalar(select(Job.id).where(Job.key == key)) is not None:
        return
    session.add(Job(id=new_id("job"), merchant_id=merchant_id, kind=kind, key=key, run_at=run_at,
                    status="pending", attempts=0, payload=payload, created_at=now))


def next_local_midnight(after: datetime, tz: str) -> datetime:
    local = after.astimezone(ZoneInfo(tz))
    day = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.astimezone(UTC)


def next_month_start(after: datetime, tz: str) -> datetime:
    local = after.astimezone(ZoneInfo(tz))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)


async def schedule_recurring(session: AsyncSession, merchant: Merchant, after: datetime) -> None:
    """The merchant's daily expiry sweep and monthly tier review, next occurrence of each."""
    day = next_local_midnight(after, merchant.timezone)
    await add_job(session, "points.expire", f"expire:{merchant.id}:{day.date().isoformat()}",
                  day, merchant.id, {}, after)
    month = next_month_start(after, merchant.timezone)
    await add_job(session, "tiers.review", f"tiers:{merchant.id}:{month.strftime('%Y-%m')}",
                  month, merchant.id, {}, after)


async def run_due(ctx: CoreContext, until: datetime, limit: int = 10_000) -> int:
    """Run every pending job due by `until`, oldest first, including ones they schedule."""
    await _recover_stuck(ctx)
    done = 0
    while done < limit:
        async with ctx.db.read() as session:
            batch = list(await session.scalars(
                select(Job).where(Job.status == "pending", Job.run_at <= until)
                .order_by(Job.run_at, Job.id).limit(50)
            ))
        if not batch:
            break
        for job in batch:
            await _run_one(ctx, job)
            done += 1
    return done


async def _recover_stuck(ctx: CoreContext) -> None:
    """A job left running by a crashed process goes back to the queue (jobs are idempotent)."""
    async with ctx.uow() as uow:
        await uow.session.execute(
            update(Job).where(Job.status == "running", Job.claimed_at < ctx.now() - STUCK_AFTER)
            .values(status="pending")
        )
        await uow.commit()


async def _run_one(ctx: CoreContext, job: Job) -> None:
    async with ctx.uow() as uow:
        claimed = await uow.session.execute(
            update(Job).where(Job.id == job.id, Job.status == "pending")
            .values(status="running", attempts=Job.attempts + 1, claimed_at=ctx.now())
        )
        await uow.commit()
    if getattr(claimed, "rowcount", 0) != 1:
        return  # another scheduler took it
    started = time.perf_counter()
    try:
        await HANDLERS[job.kind](ctx, job)
    except Exception as exc:  # a failing job is retried later, never lost
        log.exception("job failed", extra={"job_id": job.id, "job_kind": job.kind,
                                          "merchant_id": job.merchant_id})
        await _finish(ctx, job, error=f"{type(exc).__name__}: {exc}")
        return
    await _finish(ctx, job, error=None)
    log.info("job done", extra={"job_id": job.id, "job_kind": job.kind,
                                "merchant_id": job.merchant_id,
                                "duration_ms": round((time.perf_counter() - started) * 1000, 1)})


async def _finish(ctx: CoreContext, job: Job, error: str | None) -> None:
    async with ctx.uow() as uow:
        row = await uow.session.get(Job, job.id)
        assert row is not None
        if error is None:
            row.status, row.finished_at, row.last_error = "done", ctx.now(), None
        elif row.attempts >= MAX_ATTEMPTS:
            row.status, row.last_error = "failed", error[:2000]
        else:
            row.status, row.last_error = "pending", error[:2000]
            row.run_at = row.run_at + timedelta(minutes=2 ** row.attempts)
        await uow.commit()


@handler("points.expire")
async def expire_points(ctx: CoreContext, job: Job) -> None:
    """The daily sweep: record expired lots, remind of expiring ones, birthday bonuses."""
    at = job.run_at
    assert job.merchant_id is not None
    async with ctx.db.read() as session:
        customer_ids = list(await session.scalars(
            select(LedgerEntry.customer_id).where(
                LedgerEntry.merchant_id == job.merchant_id, LedgerEntry.remaining_cp > 0,
                LedgerEntry.expires_at <= at,
            ).distinct()
        ))
    for customer_id in customer_ids:
        await _expire_customer(ctx, job.merchant_id, customer_id, at)
    async with ctx.db.read() as session:
        merchant = await session.get(Merchant, job.merchant_id)
    assert merchant is not None
    await daily.expiry_reminders(ctx, merchant, at)
    await daily.birthday_bonuses(ctx, merchant, at)
    await daily.reactivation_bonuses(ctx, merchant, at)
    await dates.date_bonuses(ctx, merchant, at)
    async with ctx.uow() as uow:
        await schedule_recurring(uow.session, merchant, at)
        await uow.commit()


async def _expire_customer(ctx: CoreContext, merchant_id: str, customer_id: str,
                           at: datetime) -> None:
    now = ctx.now()
    async with ctx.uow() as uow:
        session = uow.session
        customer = await session.scalar(
            select(Customer).where(Customer.id == customer_id).with_for_update()
        )
        assert customer is not None
        ledger = await CustomerLedger(session, customer, now).load()
        total = 0
        for lot in list(ledger.lots.values()):
            if lot.expires_at is None or lot.expires_at > at or not lot.remaining_cp:
                continue
            amount = lot.remaining_cp
            entry = LedgerEntry(id=new_id("led"), merchant_id=merchant_id, customer_id=customer_id,
                                kind="expiry", amount_cp=-amount, debt_cp=0,
                                occurred_at=lot.expires_at, created_at=now, mechanic=lot.mechanic)
            session.add(entry)
            session.add(LotAllocation(merchant_id=merchant_id, customer_id=customer_id,
                                      entry=entry, lot=lot, amount_cp=amount,
                                      occurred_at=lot.expires_at))
            lot.remaining_cp = 0
            total += amount
        ledger.refresh_figures(max(at, now))
        if total:
            uow.emit(merchant_id, "PointsExpired",
                     {"customer_id": customer_id, "points": str(from_minor(total))},
                     occurred_at=at, now=now, customer_id=customer_id)
        await uow.commit()


@handler("points.activate")
async def activate_points(ctx: CoreContext, job: Job) -> None:
    """Pending points became spendable: refresh figures and tell the customer."""
    at = job.run_at
    now = ctx.now()
    assert job.merchant_id is not None
    async with ctx.uow() as uow:
        customer = await uow.session.scalar(
            select(Customer).where(Customer.id == job.payload["customer_id"]).with_for_update()
        )
        if customer is None:
            return
        ledger = await CustomerLedger(uow.session, customer, now).load()
        lot = await uow.session.get(LedgerEntry, job.payload["lot_id"])
        ledger.refresh_figures(max(at, now))
        if lot is not None and lot.remaining_cp:
            uow.emit(job.merchant_id, "PointsActivated",
                     {"customer_id": customer.id, "points": str(from_minor(lot.remaining_cp)),
                      "lot_id": lot.id},
                     occurred_at=at, now=now, customer_id=customer.id)
        await uow.commit()


@handler("tiers.review")
async def review_tiers(ctx: CoreContext, job: Job) -> None:
    """Monthly: every customer's tier against the current program; next month's review."""
    at = job.run_at
    now = ctx.now()
    assert job.merchant_id is not None
    async with ctx.uow() as uow:
        merchant = await uow.session.get(Merchant, job.merchant_id)
        assert merchant is not None
        program = await current_program(uow.session, merchant)
        customers = await uow.session.scalars(
            select(Customer).where(Customer.merchant_id == merchant.id,
                                   Customer.deleted_at.is_(None), Customer.tier_manual.is_(False))
        )
        for customer in customers:
            await reevaluate_tier(uow, program, customer, at, now, scheduled=True)
        await schedule_recurring(uow.session, merchant, at)
        await uow.commit()
