"""From the dialog's screens to saved outgoing rows: images stored first, one row per screen."""

from __future__ import annotations

from dataclasses import replace

from bots.dialog.dialog import DialogDeps
from bots.dialog.screens import Reply, Screen
from core.services.accounts import AccountState
from core.services.outgoing import REPLY, NewOutgoing, enqueue


async def store_images(deps: DialogDeps, merchant_id: str, screens: list[Screen]) -> list[Screen]:
    """Screens whose images are bytes get them saved through the media store (by our id)."""
    stored = []
    for screen in screens:
        image = screen.image
        if image is not None and image.media_id is None:
            if image.data is None:
                raise ValueError("an image needs bytes or a media id")
            media_id = await deps.media.put(merchant_id, image.content_type, image.data)
            screen = replace(screen, image=replace(image, media_id=media_id, data=None))
        stored.append(screen)
    return stored


async def deliver(deps: DialogDeps, account: AccountState, reply: Reply, *, priority: int = REPLY,
                  kind: str = "reply") -> list[str]:
    """Queue the reply's screens for the account's chat, in order; returns the outgoing ids.

    The toast (a button's immediate answer) is not queued: the adapter answers the
    button press itself.
    """
    screens = await store_images(deps, account.merchant_id, reply.screens)
    return await enqueue(deps.ctx, [
        NewOutgoing(merchant_id=account.merchant_id, bot_id=account.bot_id,
                    channel_account_id=account.id, chat_id=account.chat_id,
                    body=screen.to_body(), priority=priority, kind=kind)
        for screen in screens], hand_to=deps.outgoing, blocked=account.blocked)
