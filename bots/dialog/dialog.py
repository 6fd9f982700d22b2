"""The dialog: routes each `Event` of an account to a flow's handler and collects its screens.

Flows are modules with a `Router` (like aiogram's): `@router.action("card")` for a
button whose action is "card" or "card:<arg>", `@router.input("registration")` for
text, contacts and photos while the account is in that flow, `@router.start` for a
start command. State lives in the database (core.services.accounts), not in a
framework's FSM, so every channel shares it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bots.dialog.screens import Button, Event, Image, Prompt, Reply, Screen
from bots.dialog.texts import Texts, pick_locale
from core.ports import MediaStore, SmsGateway
from core.services import accounts
from core.services.accounts import AccountState
from core.services.context import CoreContext
from core.services.dispatcher import Dispatcher
from core.services.otp import OtpPolicy
from core.services.programs import merchant_and_program

log = logging.getLogger("kartochka.dialog")
Handler = Callable[["Turn"], Awaitable[None]]
# A personal link for a payload (invite a friend); each channel knows its own form.
DeepLink = Callable[[str, str], Awaitable[str | None]]


@dataclass
class DialogDeps:
    """What flows may use: the core, the SMS gateway, the media store, links."""

    ctx: CoreContext
    sms: SmsGateway
    media: MediaStore
    deep_link: DeepLink
    public_url: str | None = None
    trust_client_ip: bool = False
    otp: OtpPolicy = field(default_factory=OtpPolicy)
    outgoing: Dispatcher | None = None  # replies are handed to it at once (see outgoing.enqueue)


@dataclass
class Turn:
    """One event being answered: who, what, in which state, and the screens so far."""

    event: Event
    account: AccountState
    texts: Texts
    deps: DialogDeps
    reply: Reply = field(default_factory=Reply)

    @property
    def ctx(self) -> CoreContext:
        return self.deps.ctx

    @property
    def arg(self) -> str:
        """What follows the first ':' of a button action ("history:2" -> "2")."""
        payload = self.event.payload or ""
        return payload.split(":", 1)[1] if ":" in payload else ""

    def say(self, key: str, *, buttons: Sequence[Sequence[Button]] = (), prompt: Prompt | None = None,
            image: Image | None = None, edit: bool = False, remove_prompt: bool = False,
            **context: Any) -> Screen:
        """Add a screen with the text `key`; `edit` replaces the message whose button was pressed."""
        context.setdefault("contact_button", self.event.contact_button)
        screen = Screen(
            text=self.texts(key, **context), image=image,
            buttons=tuple(tuple(row) for row in buttons), prompt=prompt, remove_prompt=remove_prompt,
            replaces=self.event.message_ref if edit and self.event.kind == "button" else None)
        self.reply.screens.append(screen)
        return screen

    def button(self, key: str, action: str, **context: Any) -> Button:
        return Button(text=self.texts(key, **context), action=action)

    def toast(self, key: str, **context: Any) -> None:
        self.reply.toast = self.texts(key, **context)


class Router:
    """One flow's handlers; a Dialog is built from several routers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: dict[str, tuple[Handler, bool]] = {}
        self.inputs: dict[str, Handler] = {}
        self.starts: list[Handler] = []
        self.fallbacks: list[Handler] = []

    def action(self, name: str, *, needs_customer: bool = True) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.actions[name] = (handler, needs_customer)
            return handler
        return register

    def input(self, flow: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.inputs[flow] = handler
            return handler
        return register

    def start(self, handler: Handler) -> Handler:
        self.starts.append(handler)
        return handler

    def fallback(self, handler: Handler) -> Handler:
        """Input outside any flow (or a flow nobody handles)."""
        self.fallbacks.append(handler)
        return handler


class Dialog:
    """Events in, screens out; the same for every channel."""

    def __init__(self, deps: DialogDeps, routers: Sequence[Router]) -> None:
        self.deps = deps
        self.actions: dict[str, tuple[Handler, bool]] = {}
        self.inputs: dict[str, Handler] = {}
        self.starts: list[Handler] = []
        self.fallbacks: list[Handler] = []
        for router in routers:
            for name in router.actions:
                if name in self.actions:
                    raise ValueError(f"action {name!r} is handled twice")
            self.actions.update(router.actions)
            self.inputs.update(router.inputs)
            self.starts += router.starts
            self.fallbacks += router.fallbacks
        self.needs_registration: Handler | None = self.actions.get("register", (None, False))[0]

    async def texts_for(self, account: AccountState) -> Texts:
        _merchant, program = await merchant_and_program(self.deps.ctx, account.merchant_id)
        forms = program.currency.en if account.locale == "en" else program.currency.ru
        return Texts(account.locale, forms)

    async def handle(self, event: Event) -> tuple[AccountState, Reply]:
        """Answer one event; the account's state is saved before the screens are returned."""
        ctx = self.deps.ctx
        account = await accounts.open_account(
            ctx, event.merchant_id, event.channel, event.bot_id, event.user_id, event.chat_id,
            pick_locale(event.language))
        if event.kind in ("blocked", "unblocked"):
            await accounts.set_blocked(ctx, account.id, ctx.now() if event.kind == "blocked" else None)
            return account, Reply()
        turn = Turn(event=event, account=account, texts=await self.texts_for(account), deps=self.deps)
        before = (account.flow, account.step, dict(account.data))
        await self._route(turn)
        if (account.flow, account.step, account.data) != before or account.created:
            await accounts.save_state(ctx, account)
        return account, turn.reply

    async def _route(self, turn: Turn) -> None:
        event, account = turn.event, turn.account
        if event.kind == "start":
            for handler in self.starts:
                await handler(turn)
            return
        if event.kind == "button":
            name = (event.payload or "").split(":", 1)[0]
            found = self.actions.get(name)
            if found is None:
                log.info("unknown button", extra={"action": name, "account_id": account.id})
                turn.toast("common.outdated_button")
                return
            handler, needs_customer = found
            if needs_customer and account.customer_id is None and self.needs_registration is not None:
                handler = self.needs_registration
            await handler(turn)
            return
        if account.flow is not None and account.flow in self.inputs:
            await self.inputs[account.flow](turn)
            return
        for fallback in self.fallbacks:
            await fallback(turn)
