"""Rows loaded by core.db.fastload behave as rows the ORM loaded (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import InvalidRequestError

from core.db import fastload
from core.db.models import Customer
from core.services.customers import RegisterCustomer, register_customer

BY_PHONE = select(*Customer.__table__.c).where(Customer.phone == bindparam("phone"))
PHONE = "+79161234567"


async def _customer_id(core, merchant_id) -> str:
    _, customer = await register_customer(core.ctx, merchant_id, RegisterCustomer(phone=PHONE))
    return str(customer["id"])


@pytest.mark.parametrize("plain", [True, False], ids=["plain-write", "orm-flush"])
async def test_a_loaded_row_is_the_sessions_object_and_its_changes_are_written(
        core, merchant_id, plain):
    customer_id = await _customer_id(core, merchant_id)
    async with core.ctx.uow() as uow:
        [customer] = await fastload.load(uow.session, Customer, BY_PHONE, {"phone": PHONE})
        assert customer.id == customer_id and customer.created_at.tzinfo is not None
        # the identity map knows it: the ORM hands out the same object, nothing is reloaded
        assert await uow.session.get(Customer, customer_id) is customer
        assert not uow.session.dirty
        customer.name = "Анна"
        customer.available_cp += 500
        assert customer in uow.session.dirty
        await uow.commit(plain=plain)
    async with core.ctx.db.read() as session:
        saved = await session.get(Customer, customer_id)
        assert saved is not None and saved.name == "Анна" and saved.available_cp == 500


async def test_an_object_already_in_the_session_is_refreshed_in_place(core, merchant_id):
    customer_id = await _customer_id(core, merchant_id)
    async with core.ctx.uow() as uow:
        first = await uow.session.get(Customer, customer_id)
        assert first is not None
        # the row changes underneath the object (a plain UPDATE does not touch the object)
        table = Customer.__table__
        await uow.session.execute(
            update(table).where(table.c.id == customer_id).values(name="Борис"))
        assert first.name is None
        [again] = await fastload.load(uow.session, Customer, BY_PHONE, {"phone": PHONE})
        assert again is first and first.name == "Борис"
        assert not uow.session.dirty  # refreshed, not changed


async def test_unsaved_changes_are_flushed_first_or_refused_never_lost(core, merchant_id):
    await _customer_id(core, merchant_id)
    async with core.ctx.uow() as uow:
        [customer] = await fastload.load(uow.session, Customer, BY_PHONE, {"phone": PHONE})
        customer.name = "Вера"
        # as before an ORM query, the session's changes are flushed: the select sees them
        [again] = await fastload.load(uow.session, Customer, BY_PHONE, {"phone": PHONE})
        assert again is customer and customer.name == "Вера"
        customer.name = "Галина"
        with uow.session.no_autoflush, pytest.raises(InvalidRequestError, match="unsaved"):
            await fastload.load(uow.session, Customer, BY_PHONE, {"phone": PHONE})
        assert customer.name == "Галина"


async def test_no_row_gives_no_object(core, merchant_id):
    async with core.ctx.uow() as uow:
        assert await fastload.load(uow.session, Customer, BY_PHONE, {"phone": "+79990000000"}) == []
