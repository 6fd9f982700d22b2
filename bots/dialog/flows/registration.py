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
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from bots.dialog.card_image import render_card
from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import show_menu
from bots.dialog.screens import Button, Image, Prompt
from core import errors
from core.phones import normalise_phone
from core.ports import SmsFailed
from core.services import conversations, otp, registration
from core.services.consents import ADVERTISING, PERSONAL_DATA, record_consent
from core.services.programs import merchant_and_program

router = Router("registration")
FLOW = "registration"
KEPT = ("ref", "source", "new")  # what the steps carry along (new: a new customer)
PROFILE = ("name", "birthday", "gender")
Step = Callable[..., Awaitable[None]]


def _kept(turn: Turn, **more: Any) -> dict[str, Any]:
    return {**{k: v for k, v in turn.account.data.items() if k in KEPT}, **more}


def _go(turn: Turn, step: str | None, **more: Any) -> None:
    turn.account.go(FLOW, step, **_kept(turn, **more))


@router.start
async def start(turn: Turn) -> None:
    """/start (with a payload): the menu for a customer, registration for anyone else."""
    if turn.account.customer_id is not None:
        turn.account.go(None)
        await show_menu(turn)
        return
    data = _kept(turn) if turn.account.flow == FLOW else {}
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
        account.go(FLOW, "consent_pd", **(_kept(turn) if step is not None else {}))
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
    _go(turn, "consent_ad")
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
    _go(turn, "phone")
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
        _go(turn, "code", phone=normalise_phone(phone, merchant.country))
        turn.say("registration.resend_too_soon", seconds=exc.seconds, buttons=_code_buttons(turn),
                 remove_prompt=True)
    except errors.CodeLocked as exc:
        turn.say("registration.code_locked", until=_clock(exc.until, merchant.timezone))
    except errors.SmsLimitReached:
        await ask_phone(turn, "registration.sms_limit")
    except SmsFailed:
        await ask_phone(turn, "registration.sms_failed")
    else:
        _go(turn, "code", phone=sent.phone)  # the code is typed: no "share my phone" keyboard now
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
        _go(turn, "phone")
        await ask_phone(turn, "registration.code_not_sent")
    else:
        await linked(turn, confirmed)


async def resend(turn: Turn) -> None:
    phone = turn.account.data.get("phone")
    await (send_code(turn, str(phone)) if phone else other_phone(turn))


async def other_phone(turn: Turn) -> None:
    _go(turn, "phone")
    await ask_phone(turn)


async def linked(turn: Turn, phone: str) -> None:
    """The phone is confirmed: link (or register) the customer, then ask what is missing."""
    data = turn.account.data
    result = await registration.confirm_phone(
        turn.ctx, turn.account.id, phone, source=data.get("source"), referral_code=data.get("ref"))
    turn.account.customer_id = result.customer_id
    _go(turn, None, new=result.created)
    turn.say("registration.phone_confirmed" if result.created else "registration.found",
             remove_prompt=True)
    await advance(turn, None)


# -- profile --------------------------------------------------------------------------------
async def advance(turn: Turn, after: str | None) -> None:
    """Ask the next profile question the customer has no answer to yet, or welcome them."""
    account = turn.account
    assert account.customer_id is not None
    view = await registration.welcome_view(turn.ctx, account.merchant_id, account.customer_id)
    known = {"name": view.name, "birthday": view.birth_date, "gender": view.gender}
    for step in PROFILE[PROFILE.index(after) + 1 if after else 0:]:
        if known[step] is None:
            _go(turn, step)
            await ASK[step](turn)
            return
    await welcome(turn, view)


async def ask_name(turn: Turn, key: str = "registration.ask_name") -> None:
    turn.say(key)


async def name_typed(turn: Turn, text: str) -> None:
    assert turn.account.customer_id is not None
    try:
        await registration.set_name(turn.ctx, turn.account.merchant_id, turn.account.customer_id, text)
    except errors.InvalidName as exc:
        await ask_name(turn, f"registration.name_{exc.details['reason']}")
        return
    await advance(turn, "name")


async def ask_birthday(turn: Turn, key: str = "registration.ask_birthday") -> None:
    turn.say(key, buttons=[[turn.button("registration.skip", "reg:skip_birthday")]])


async def birthday_typed(turn: Turn, text: str) -> None:
    account = turn.account
    assert account.customer_id is not None
    merchant, _ = await merchant_and_program(turn.ctx, account.merchant_id)
    today = turn.ctx.now().astimezone(ZoneInfo(merchant.timezone)).date()
    try:
        value = registration.parse_birth_date(text, today)
    except errors.InvalidBirthDate as exc:
        await ask_birthday(turn, f"registration.birthday_{exc.details['reason']}")
        return
    await registration.set_birth_date(turn.ctx, account.merchant_id, account.customer_id, value)
    await advance(turn, "birthday")


async def ask_gender(turn: Turn) -> None:
    turn.say("registration.ask_gender", buttons=[
        [turn.button("registration.male", "reg:gender_m"),
         turn.button("registration.female", "reg:gender_f")],
        [turn.button("registration.skip", "reg:gender_skip")]])


def _gender(value: str | None) -> Step:
    async def choose(turn: Turn) -> None:
        assert turn.account.customer_id is not None
        if value is not None:
            await registration.set_gender(turn.ctx, turn.account.merchant_id,
                                          turn.account.customer_id, value)
        await advance(turn, "gender")
    return choose


async def welcome(turn: Turn, view: registration.WelcomeView) -> None:
    """The welcome screen with the card and the bonus, then the menu."""
    merchant, _ = await merchant_and_program(turn.ctx, turn.account.merchant_id)
    balance: Decimal = view.available + view.pending
    image = None
    if view.card_number:
        t = turn.texts
        image = Image(filename="card.png", data=render_card(
            view.card_number, merchant=merchant.name, caption=t("registration.card_caption"),
            balance=t("registration.card_balance", amount=balance),
            tier=t("registration.card_tier", tier=view.tier_name)))
    turn.say("registration.welcome", image=image, new=bool(turn.account.data.get("new")),
             name=view.name, card=view.card_number, merchant=merchant.name, amount=balance,
             available=view.available, pending=view.pending, later=view.first_purchase_bonus)
    turn.account.go(None)
    await show_menu(turn)


ASK: dict[str, Step] = {
    "consent_pd": ask_consent_pd, "consent_ad": ask_consent_ad, "phone": ask_phone,
    "code": ask_code, "name": ask_name, "birthday": ask_birthday, "gender": ask_gender,
}
TYPED: dict[str, Callable[[Turn, str], Awaitable[None]]] = {
    "phone": send_code, "code": code_typed, "name": name_typed, "birthday": birthday_typed,
}


BUTTONS: dict[tuple[str | None, str], Step] = {
    ("consent_pd", "pd_yes"): pd_yes, ("consent_pd", "pd_no"): pd_no,
    ("consent_ad", "ad_yes"): partial(ad_answer, granted=True),
    ("consent_ad", "ad_no"): partial(ad_answer, granted=False),
    ("code", "resend"): resend, ("code", "other_phone"): other_phone,
    ("birthday", "skip_birthday"): partial(advance, after="birthday"),
    ("gender", "gender_m"): _gender("m"), ("gender", "gender_f"): _gender("f"),
    ("gender", "gender_skip"): _gender(None),
}
