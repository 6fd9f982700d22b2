"""SMS codes: lifetime, tries and lock, resend gap, daily caps; and the SMS.ru gateway over HTTP."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.gateways import LogSmsGateway, SmsRuFailed, SmsRuGateway, build_sms_gateway
from core.config import Settings
from core.db.models import PhoneCode
from core.errors import (
    CodeExpired,
    CodeLocked,
    CodeMalformed,
    CodeNotSent,
    CodeWrong,
    InvalidPhone,
    ResendTooSoon,
    SmsCountryRefused,
    SmsLimitReached,
)
from core.ports import FixedClock, SmsFailed
from core.services import merchants, otp
from tests.conftest import START
from tests.fakes.sms_ru import FakeSmsRu

PHONE = "+79161234567"
OTHER = "+79167654321"
PURPOSE = "register"


def text(code: str) -> str:
    return f"{code} is your code"


def last_code(sms: LogSmsGateway, phone: str = PHONE) -> str:
    found = re.search(r"\b(\d{6})\b", sms.texts_to(phone)[-1])
    assert found is not None
    return found.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def send(core: Any, sms: Any, merchant_id: str, phone: str = PHONE, **kw: Any) -> otp.SentCode:
    return await otp.send_code(core.ctx, sms, merchant_id, phone, PURPOSE, text, **kw)


async def check(core: Any, merchant_id: str, code: str, phone: str = PHONE, **kw: Any) -> str:
    return await otp.check_code(core.ctx, merchant_id, phone, PURPOSE, code, **kw)


@pytest.fixture
def sms() -> LogSmsGateway:
    return LogSmsGateway()


async def test_the_code_sent_confirms_the_phone_once(core: Any, merchant_id: str,
                                                     sms: LogSmsGateway) -> None:
    sent = await send(core, sms, merchant_id, "8 (916) 123-45-67")
    assert sent.phone == PHONE
    assert sent.expires_at == START + timedelta(minutes=5)
    assert sent.resend_at == START + timedelta(seconds=60)
    code = last_code(sms)
    assert await check(core, merchant_id, f" {code[:3]} {code[3:]} ", "79161234567") == PHONE
    with pytest.raises(CodeNotSent):
        await check(core, merchant_id, code)


async def test_only_an_hmac_is_kept_and_the_code_is_never_logged_at_info(
        core: Any, merchant_id: str, sms: LogSmsGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await send(core, sms, merchant_id)
    code = last_code(sms)
    async with core.ctx.db.read() as session:
        row = (await session.scalars(select(PhoneCode))).one()
    assert code not in row.digest and len(row.digest) == 64
    assert all(code not in r.getMessage() and code not in str(vars(r)) for r in caplog.records)
    with caplog.at_level(logging.DEBUG, logger="kartochka.sms"):
        await send(core, sms, merchant_id, OTHER)
    assert any(last_code(sms, OTHER) in r.getMessage() for r in caplog.records
               if r.levelno == logging.DEBUG)


async def test_a_code_is_bound_to_its_phone_and_purpose(core: Any, merchant_id: str,
                                                        sms: LogSmsGateway) -> None:
    await send(core, sms, merchant_id, PHONE)
    await send(core, sms, merchant_id, OTHER)
    with pytest.raises(CodeWrong):
        await check(core, merchant_id, last_code(sms, PHONE), OTHER)
    with pytest.raises(CodeNotSent):
        await otp.check_code(core.ctx, merchant_id, PHONE, "login", last_code(sms, PHONE))
    assert await check(core, merchant_id, last_code(sms, PHONE), PHONE) == PHONE


async def test_a_code_sent_to_another_account_is_not_this_ones(core: Any, merchant_id: str,
                                                               sms: LogSmsGateway) -> None:
    await send(core, sms, merchant_id, account_id=None)
    with pytest.raises(CodeNotSent):
        await check(core, merchant_id, last_code(sms), account_id="acc_someone")


async def test_a_code_expires_after_five_minutes(core: Any, merchant_id: str, sms: LogSmsGateway,
                                                 clock: FixedClock) -> None:
    await send(core, sms, merchant_id)
    clock.advance_to(START + timedelta(minutes=5))
    with pytest.raises(CodeExpired):
        await check(core, merchant_id, last_code(sms))


async def test_a_code_works_until_its_last_second(core: Any, merchant_id: str, sms: LogSmsGateway,
                                                  clock: FixedClock) -> None:
    await send(core, sms, merchant_id)
    clock.advance_to(START + timedelta(minutes=5) - timedelta(seconds=1))
    assert await check(core, merchant_id, last_code(sms)) == PHONE


async def test_five_wrong_codes_lock_the_phone_for_fifteen_minutes(
        core: Any, merchant_id: str, sms: LogSmsGateway, clock: FixedClock) -> None:
    await send(core, sms, merchant_id)
    right = last_code(sms)
    for left in (4, 3, 2, 1):
        with pytest.raises(CodeWrong) as wrong:
            await check(core, merchant_id, other_code(right))
        assert wrong.value.tries_left == left
    with pytest.raises(CodeLocked) as locked:
        await check(core, merchant_id, other_code(right))
    assert locked.value.until == START + timedelta(minutes=15)
    with pytest.raises(CodeLocked):  # even the right code, now
        await check(core, merchant_id, right)
    clock.advance_to(START + timedelta(minutes=14))
    with pytest.raises(CodeLocked):  # and no new code either
        await send(core, sms, merchant_id)
    clock.advance_to(START + timedelta(minutes=15))
    await send(core, sms, merchant_id)
    assert await check(core, merchant_id, last_code(sms)) == PHONE


async def test_a_wrong_code_costs_one_try_however_close_it_is(core: Any, merchant_id: str,
                                                              sms: LogSmsGateway) -> None:
    await send(core, sms, merchant_id)
    right = last_code(sms)
    near = right[:5] + str((int(right[5]) + 1) % 10)  # only the last digit differs
    far = "".join(str((int(d) + 5) % 10) for d in right)  # every digit differs
    tries = []
    for guess in (near, far):
        with pytest.raises(CodeWrong) as wrong:
            await check(core, merchant_id, guess)
        tries.append(wrong.value.tries_left)
    assert tries == [4, 3]


async def test_typing_something_that_is_not_a_code_costs_no_try(core: Any, merchant_id: str,
                                                                sms: LogSmsGateway) -> None:
    await send(core, sms, merchant_id)
    for typed in ("12345", "1234567", "abcdef", ""):
        with pytest.raises(CodeMalformed):
            await check(core, merchant_id, typed)
    with pytest.raises(CodeWrong) as wrong:
        await check(core, merchant_id, other_code(last_code(sms)))
    assert wrong.value.tries_left == 4


async def test_a_new_code_waits_sixty_seconds_and_replaces_the_old(
        core: Any, merchant_id: str, sms: LogSmsGateway, clock: FixedClock) -> None:
    await send(core, sms, merchant_id)
    first = last_code(sms)
    with pytest.raises(ResendTooSoon) as soon:
        await send(core, sms, merchant_id)
    assert soon.value.seconds == 60
    clock.advance_to(START + timedelta(seconds=59))
    with pytest.raises(ResendTooSoon) as soon:
        await send(core, sms, merchant_id)
    assert soon.value.seconds == 1
    await send(core, sms, merchant_id, OTHER)  # another phone does not wait
    clock.advance_to(START + timedelta(seconds=60))
    await send(core, sms, merchant_id)
    second = last_code(sms)
    if second != first:
        with pytest.raises(CodeWrong):
            await check(core, merchant_id, first)
    assert await check(core, merchant_id, second) == PHONE


async def test_five_codes_a_day_per_phone(core: Any, merchant_id: str, sms: LogSmsGateway,
                                          clock: FixedClock) -> None:
    at = START
    for _ in range(5):
        await send(core, sms, merchant_id)
        at += timedelta(minutes=2)
        clock.advance_to(at)
    with pytest.raises(SmsLimitReached) as limit:
        await send(core, sms, merchant_id)
    assert limit.value.scope == "phone"
    assert len(sms.texts_to(PHONE)) == 5
    clock.advance_to(START + timedelta(days=1, seconds=1))
    await send(core, sms, merchant_id)
    assert len(sms.texts_to(PHONE)) == 6


async def test_ten_codes_a_day_per_account(core: Any, merchant_id: str, sms: LogSmsGateway) -> None:
    phones = [f"+7916100{n:04d}" for n in range(11)]
    for phone in phones[:10]:  # ten codes without an account: no account cap applies
        await send(core, sms, merchant_id, phone, account_id=None)
    # Ten codes asked from one account: its eleventh is refused.
    account = await _account(core, merchant_id)
    for phone in [f"+7916200{n:04d}" for n in range(10)]:
        await send(core, sms, merchant_id, phone, account_id=account)
    with pytest.raises(SmsLimitReached) as limit:
        await send(core, sms, merchant_id, phones[10], account_id=account)
    assert limit.value.scope == "account"
    await send(core, sms, merchant_id, phones[10])  # without the account it may go


async def test_the_merchant_cap_and_the_ip_cap(core: Any, merchant_id: str, sms: LogSmsGateway) -> None:
    policy = otp.OtpPolicy(per_merchant_daily=4, per_ip_daily=2)
    await send(core, sms, merchant_id, "+79160000001", client_ip="203.0.113.7", policy=policy)
    await send(core, sms, merchant_id, "+79160000002", client_ip="203.0.113.7", policy=policy)
    with pytest.raises(SmsLimitReached) as limit:
        await send(core, sms, merchant_id, "+79160000003", client_ip="203.0.113.7", policy=policy)
    assert limit.value.scope == "ip"
    await send(core, sms, merchant_id, "+79160000003", policy=policy)  # no trusted IP: no IP cap
    await send(core, sms, merchant_id, "+79160000004", client_ip="203.0.113.8", policy=policy)
    with pytest.raises(SmsLimitReached) as limit:
        await send(core, sms, merchant_id, "+79160000005", policy=policy)
    assert limit.value.scope == "merchant"


async def test_the_merchant_hourly_cap_stops_a_burst(core: Any, merchant_id: str,
                                                    sms: LogSmsGateway) -> None:
    policy = otp.OtpPolicy(per_merchant_hourly=2)
    await send(core, sms, merchant_id, "+79160000001", policy=policy)
    await send(core, sms, merchant_id, "+79160000002", policy=policy)
    with pytest.raises(SmsLimitReached) as limit:
        await send(core, sms, merchant_id, "+79160000003", policy=policy)
    assert limit.value.scope == "merchant_hour"


async def test_codes_go_only_to_the_merchants_countries(core: Any, merchant_id: str,
                                                      sms: LogSmsGateway) -> None:
    for foreign in ("+77012345678", "+447911123456"):  # Kazakhstan shares +7 with Russia
        with pytest.raises(SmsCountryRefused):
            await send(core, sms, merchant_id, foreign)
    assert not sms.sent
    await send(core, sms, merchant_id, "+77012345678", policy=otp.OtpPolicy(countries=("RU", "KZ")))
    assert len(sms.sent) == 1


async def test_the_settings_set_the_caps() -> None:
    settings = Settings(sms_daily_per_phone=2, sms_daily_per_merchant=7,
                        _env_file=None)  # type: ignore[call-arg]
    policy = otp.OtpPolicy.from_settings(settings)
    assert (policy.per_phone_daily, policy.per_account_daily, policy.per_merchant_daily) == (2, 10, 7)


async def test_not_a_phone_is_refused_before_anything_is_sent(core: Any, merchant_id: str,
                                                              sms: LogSmsGateway) -> None:
    with pytest.raises(InvalidPhone):
        await send(core, sms, merchant_id, "12345")
    assert not sms.sent


async def _account(core: Any, merchant_id: str) -> str:
    from core.services.accounts import open_account

    account = await open_account(core.ctx, merchant_id, "web", "bot_web", "u1", "c1", "ru")
    return account.id


# -- SMS.ru over real HTTP -------------------------------------------------------------------
@pytest.fixture
async def sms_ru() -> AsyncIterator[FakeSmsRu]:
    async with FakeSmsRu() as fake:
        yield fake


@pytest.fixture
async def gateway(core: Any, merchant_id: str, sms_ru: FakeSmsRu) -> AsyncIterator[SmsRuGateway]:
    await merchants.set_secret(core.ctx, merchant_id, "sms.ru:api_id", "test-api-id")
    settings = core.settings.model_copy(update={"sms_gateway": "smsru", "sms_api_url": sms_ru.url,
                                                "sms_timeout_seconds": 0.5})
    built = build_sms_gateway(settings, core.ctx)
    assert isinstance(built, SmsRuGateway)
    yield built
    await built.close()


async def test_smsru_delivers_the_code(core: Any, merchant_id: str, sms_ru: FakeSmsRu,
                                       gateway: SmsRuGateway) -> None:
    await merchants.set_secret(core.ctx, merchant_id, "sms.ru:from", "Coffee")
    await send(core, gateway, merchant_id)
    [message] = sms_ru.messages
    assert (message.api_id, message.to, message.sender) == ("test-api-id", "79161234567", "Coffee")
    code = re.search(r"\d{6}", message.msg)
    assert code is not None
    assert await check(core, merchant_id, code.group(0)) == PHONE


@pytest.mark.parametrize(("status", "meaning"), [
    (201, "not enough money"), (204, "sender name not approved"), (207, "cannot be sent"),
    (220, "temporarily unavailable"), (230, "daily limit"),
])
async def test_smsru_refusals_name_the_status(core: Any, merchant_id: str, sms_ru: FakeSmsRu,
                                              gateway: SmsRuGateway, status: int, meaning: str) -> None:
    sms_ru.fail(status, times=1)
    with pytest.raises(SmsRuFailed) as failed:
        await gateway.send(merchant_id, PHONE, "hello")
    assert failed.value.status == status and meaning in str(failed.value)
    assert not sms_ru.messages
    await gateway.send(merchant_id, PHONE, "hello")
    assert sms_ru.texts_to(PHONE) == ["hello"]


async def test_smsru_wrong_credentials_and_no_credentials(core: Any, merchant_id: str,
                                                          sms_ru: FakeSmsRu,
                                                          gateway: SmsRuGateway) -> None:
    await merchants.set_secret(core.ctx, merchant_id, "sms.ru:api_id", "not-the-key")
    with pytest.raises(SmsRuFailed) as failed:
        await gateway.send(merchant_id, PHONE, "hello")
    assert failed.value.status == 200 and "api_id" in str(failed.value)
    other = await merchants.create_merchant(core.ctx, merchants.NewMerchant(name="B", slug="bakery"))
    with pytest.raises(SmsRuFailed) as failed:
        await gateway.send(other.id, PHONE, "hello")
    assert failed.value.status == "not_configured"
    assert sms_ru.requests == 1  # nothing was asked of SMS.ru without credentials


async def test_smsru_http_errors_and_timeouts_are_sms_failures(core: Any, merchant_id: str,
                                                               sms_ru: FakeSmsRu,
                                                               gateway: SmsRuGateway) -> None:
    sms_ru.fail_http(502, times=1)
    with pytest.raises(SmsFailed, match="502"):
        await gateway.send(merchant_id, PHONE, "hello")
    sms_ru.delay = 2.0
    with pytest.raises(SmsRuFailed) as failed:
        await gateway.send(merchant_id, PHONE, "hello")
    assert failed.value.status == "timeout" and failed.value.retryable


async def test_a_code_sms_ru_refused_counts_against_nothing(core: Any, merchant_id: str,
                                                            sms_ru: FakeSmsRu,
                                                            gateway: SmsRuGateway) -> None:
    sms_ru.fail(220, times=1)
    with pytest.raises(SmsFailed):
        await send(core, gateway, merchant_id)
    await send(core, gateway, merchant_id)  # at once: no resend gap, no cap used
    assert len(sms_ru.messages) == 1
