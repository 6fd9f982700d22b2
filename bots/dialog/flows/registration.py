"""Flow: registration — consents, a confirmed phone, name, birthday, gender, the welcome card.

Steps (account.step in flow "registration"): consent_pd (152-FZ, required) -> consent_ad
(38-FZ, optional) -> phone (own contact, or a typed phone and an SMS code) -> code ->
name -> birthday (skippable) -> gender (skippable) -> welcome, then the menu. A customer
found by phone skips what the till already knows. The deep link's payload (a referral
"ref_<CODE>" or a source tag) is kept in the step data until the customer is registered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import show_menu
from bots.dialog.flows.registration_profile import (
    ASK_PROFILE,
    BUTTONS_PROFILE,
    TYPED_PROFILE,
    advance,
)
from bots.dialog.flows.registration_state import FLOW, PROFILE, Step, go, kept
from bots.dialog.screens import Button, Prompt
from core import errors
from core.phones import normalise_phone
from core.ports import SmsFailed
from core.services import conversations, otp, registration
from core.services.consents import ADVERTISING, PERSONAL_DATA, record_consent
from core.services.programs import merchant_and_program

router = Router("registration")


@router.start
async def start(turn: Turn) -> None:
    """/start (with a payload): the menu for a customer, registration for anyone else."""
    if turn.account.customer_id is not None:
        turn.account.go(None)
        await show_menu(turn)
        return
    data = kept(turn) if turn.account.flow == FLOW else {}
    turn.account.go(FLOW, "consent_pd", **{**data, **registration.parse_start_payload(turn.event.payload)})
    await ask_consent_pd(turn)


@router.action("register", needs_customer=False)
async def register(turn: Turn) -> None:
    """Any customer-only button of someone not registered yet: resume (or begin) registration."""
    account = turn.account
    step = account.step if account.flow == FLOW else None
    is_customer = account.customer_id is not None
    if step is not None and step in ASK and is_customer == (step in PROFILE):
        await ASK[step](turn)
    elif is_customer:
        account.go(None)
        await show_menu(turn)
    else:
        account.go(FLOW, "consent_pd", **(kept(turn) if step is not None else {}))
        await ask_consent_pd(turn)


@router.action("reg", needs_customer=False)
async def press(turn: Turn) -> None:
    """The flow's own buttons ("reg:<what>"); a button of another step re-asks the current one."""
    step = turn.account.step if turn.account.flow == FLOW else None
    handler = BUTTONS.get((step, turn.arg))
    if handler is not None:
        await handler(turn)
        return
    turn.toast("common.outdated_button")
    await register(turn)


@router.input(FLOW)
async def typed(turn: Turn) -> None:
    """Text and contacts while registering; anything else re-asks the current step.

    What is not an answer (a question typed at the consent screen, a photo) still reaches
    the merchant: it goes to the account's conversation, as outside any flow.
    """
    step, event = turn.account.step, turn.event
    if event.kind == "contact" and step in ("phone", "code"):
        await contact(turn)
    elif event.kind == "text" and event.text and step in TYPED:
        await TYPED[step](turn, event.text.strip())
    else:
        if event.photo or (event.text or "").strip():
            await conversations.record_inbound(
                turn.ctx, turn.deps.media, turn.account.merchant_id, turn.account.id,
                text=event.text, photo=event.photo, photo_type=event.photo_type)
        await register(turn)


# -- consents -------------------------------------------------------------------------------
async def ask_consent_pd(turn: Turn) -> None:
    merchant, _ = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    policy = merchant.privacy_policy_url
    buttons = [[turn.button("registration.accept", "reg:pd_yes"),
                turn.button("registration.decline", "reg:pd_no")]]
    if policy:
        buttons.append([Button(text=turn.texts("registration.policy"), url=policy)])
    turn.say("registration.consent_pd", buttons=buttons, legal_name=merchant.legal_name or merchant.name,
             merchant=merchant.name, policy_url=policy)


async def _consent(turn: Turn, kind: str, granted: bool) -> None:
    key = "registration.consent_pd_version" if kind == PERSONAL_DATA else "registration.consent_ad_version"
    await record_consent(turn.ctx, turn.account.merchant_id, kind, granted,
                         text_version=f"{turn.texts(key)}/{turn.texts.locale}",
                         channel=turn.account.channel, account_id=turn.account.id,
                         customer_id=turn.account.customer_id)


async def pd_yes(turn: Turn) -> None:
    await _consent(turn, PERSONAL_DATA, True)
    go(turn, "consent_ad")
    await ask_consent_ad(turn)


async def pd_no(turn: Turn) -> None:
    await _consent(turn, PERSONAL_DATA, False)
    turn.say("registration.declined", buttons=[[turn.button("registration.accept", "reg:pd_yes")]])


async def ask_consent_ad(turn: Turn) -> None:
    merchant, _ = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    turn.say("registration.consent_ad", merchant=merchant.name, buttons=[[
        turn.button("registration.ad_yes", "reg:ad_yes"),
        turn.button("registration.ad_no", "reg:ad_no")]])


async def ad_answer(turn: Turn, granted: bool) -> None:
    await _consent(turn, ADVERTISING, granted)
    go(turn, "phone")
    await ask_phone(turn)


# -- phone ----------------------------------------------------------------------------------
async def ask_phone(turn: Turn, key: str = "registration.ask_phone") -> None:
    turn.say(key, prompt=Prompt(kind="phone", label=turn.texts("registration.share_phone")))


async def contact(turn: Turn) -> None:
    """A shared contact: trusted only when the adapter vouches it is the sender's own."""
    event = turn.event
    if not event.contact_is_own or not event.contact_phone:
        await ask_phone(turn, "registration.contact_not_own")
        return
    try:
        await linked(turn, event.contact_phone)
    except errors.InvalidPhone:
        await ask_phone(turn, "registration.bad_phone")


async def send_code(turn: Turn, phone: str) -> None:
    """Send a code to `phone`, and wait for it in step "code"; errors in words."""
    ctx, account = turn.ctx, turn.account
    merchant, _ = await merchant_and_program(ctx, account.merchant_id)
    client_ip = turn.event.client_ip if turn.deps.trust_client_ip else None
    try:
        sent = await otp.send_code(
            ctx, turn.deps.sms, account.merchant_id, phone, registration.PURPOSE,
            lambda code: turn.texts("registration.sms_text", code=code, merchant=merchant.name),
            account_id=account.id, client_ip=client_ip, policy=turn.deps.otp)
    except errors.SmsCountryRefused:
        await ask_phone(turn, "registration.sms_country")
    except errors.InvalidPhone:
        await ask_phone(turn, "registration.bad_phone")
    except errors.ResendTooSoon as exc:  # the code sent a moment ago is still good: wait for it
        go(turn, "code", phone=normalise_phone(phone, merchant.country))
        turn.say("registration.resend_too_soon", seconds=exc.seconds, buttons=_code_buttons(turn),
                 remove_prompt=True)
    except errors.CodeLocked as exc:
        turn.say("registration.code_locked", until=_clock(exc.until, merchant.timezone))
    except errors.SmsLimitReached:
        await ask_phone(turn, "registration.sms_limit")
    except SmsFailed:
        await ask_phone(turn, "registration.sms_failed")
    else:
        go(turn, "code", phone=sent.phone)  # the code is typed: no "share my phone" keyboard now
        turn.say("registration.code_sent", phone=sent.phone, buttons=_code_buttons(turn),
                 remove_prompt=True)


def _code_buttons(turn: Turn) -> list[list[Any]]:
    return [[turn.button("registration.resend", "reg:resend")],
            [turn.button("registration.other_phone", "reg:other_phone")]]


def _clock(at: datetime, timezone: str) -> str:
    """HH:MM in the merchant's time, rounded up to the minute (never earlier than the truth)."""
    local = (at + timedelta(seconds=59)).astimezone(ZoneInfo(timezone))
    return local.strftime("%H:%M")


async def ask_code(turn: Turn) -> None:
    turn.say("registration.code_sent", phone=turn.account.data.get("phone", ""),
             buttons=_code_buttons(turn), remove_prompt=True)


async def code_typed(turn: Turn, text: str) -> None:
    ctx, account = turn.ctx, turn.account
    phone = str(account.data.get("phone", ""))
    try:
        confirmed = await otp.check_code(ctx, account.merchant_id, phone, registration.PURPOSE,
                                         text, account_id=account.id, policy=turn.deps.otp)
    except errors.CodeMalformed:
        turn.say("registration.code_malformed", buttons=_code_buttons(turn))
    except errors.CodeWrong as exc:
        turn.say("registration.code_wrong", left=exc.tries_left, buttons=_code_buttons(turn))
    except errors.CodeLocked as exc:
        merchant, _ = await merchant_and_program(ctx, account.merchant_id)
        turn.say("registration.code_locked", until=_clock(exc.until, merchant.timezone),
                 buttons=[[turn.button("registration.other_phone", "reg:other_phone")]])
    except errors.CodeExpired:
        turn.say("registration.code_expired", buttons=_code_buttons(turn))
    except (errors.CodeNotSent, errors.InvalidPhone):
        go(turn, "phone")
        await ask_phone(turn, "registration.code_not_sent")
    else:
        await linked(turn, confirmed)


async def resend(turn: Turn) -> None:
    phone = turn.account.data.get("phone")
    await (send_code(turn, str(phone)) if phone else other_phone(turn))


async def other_phone(turn: Turn) -> None:
    go(turn, "phone")
    await ask_phone(turn)


async def linked(turn: Turn, phone: str) -> None:
    """The phone is confirmed: link (or register) the customer, then ask what is missing."""
    data = turn.account.data
    result = await registration.confirm_phone(
        turn.ctx, turn.account.id, phone, source=data.get("source"), referral_code=data.get("ref"))
    turn.account.customer_id = result.customer_id
    go(turn, None, new=result.created)
    turn.say("registration.phone_confirmed" if result.created else "registration.found",
             remove_prompt=True)
    await advance(turn, None)


ASK: dict[str, Step] = {
    "consent_pd": ask_consent_pd, "consent_ad": ask_consent_ad, "phone": ask_phone,
    "code": ask_code, **ASK_PROFILE,
}
TYPED: dict[str, Callable[[Turn, str], Awaitable[None]]] = {
    "phone": send_code, "code": code_typed, **TYPED_PROFILE,
}
BUTTONS: dict[tuple[str | None, str], Step] = {
    ("consent_pd", "pd_yes"): pd_yes, ("consent_pd", "pd_no"): pd_no,
    ("consent_ad", "ad_yes"): partial(ad_answer, granted=True),
    ("consent_ad", "ad_no"): partial(ad_answer, granted=False),
    ("code", "resend"): resend, ("code", "other_phone"): other_phone, **BUTTONS_PROFILE,
}
