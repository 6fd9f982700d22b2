"""Flow: "Chat with us" — text and photos go to the merchant's inbox.

Anything written outside a flow lands in the conversation too (the fallback), from
registered customers and from people who have not registered yet (their account's
conversation joins the customer's thread when they register). Photos are stored as bytes
through the media port; operators' answers come back through the outgoing queue.
"""

from __future__ import annotations

import logging

from bots.dialog.dialog import Router, Turn
from bots.dialog.flows.menu import back_row
from core.services.conversations import record_inbound

log = logging.getLogger("kartochka.dialog.chat")
router = Router("chat")
FLOW = "chat"


@router.action("chat")
async def open_chat(turn: Turn) -> None:
    turn.account.go(FLOW)
    turn.say("chat.open", buttons=[back_row(turn)])


async def _record(turn: Turn) -> bool:
    """Store what was written; False when the event carries neither text nor a photo."""
    event = turn.event
    if not (event.text or "").strip() and not event.photo:
        return False
    await record_inbound(turn.ctx, turn.deps.media, turn.account.merchant_id, turn.account.id,
                         text=event.text, photo=event.photo, photo_type=event.photo_type)
    log.info("chat message", extra={"account_id": turn.account.id, "photo": event.photo is not None})
    return True


@router.input(FLOW)
async def on_chat_message(turn: Turn) -> None:
    if await _record(turn):
        turn.say("chat.received", buttons=[back_row(turn)])
    else:
        turn.say("chat.text_or_photo", buttons=[back_row(turn)])


@router.fallback
async def outside_flow(turn: Turn) -> None:
    """Text or a photo outside any flow: into the conversation, acknowledged.

    A guest's text is kept (it joins their thread when they register); a guest's photo
    is not: anyone can open the web chat, and media are bytes in our database.
    """
    if turn.account.customer_id is None and turn.event.photo is not None:
        turn.say("chat.photo_after_registration", buttons=[[turn.button("chat.register", "register")]])
        return
    stored = await _record(turn)
    if turn.account.customer_id is None:
        key = "chat.received_guest" if stored else "chat.register_first"
        turn.say(key, buttons=[[turn.button("chat.register", "register")]])
    elif stored:
        turn.say("chat.received", buttons=[back_row(turn)])
    else:
        turn.say("chat.text_or_photo", buttons=[back_row(turn)])
