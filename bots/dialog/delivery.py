"""From the dialog's screens to saved outgoing rows: images stored first, one row per screen."""

from __future__ import annotations

from dataclasses import replace

from bots.dialog.dialog import DialogDeps
from bots.dialog.screens import Reply, Screen
from core.ports import NewMedia
from core.services.accounts import AccountState
from core.services.outgoing import REPLY, NewOutgoing, enqueue


def stage_images(deps: DialogDeps, merchant_id: str, screens: list[Screen]
                 ) -> tuple[list[Screen], list[NewMedia]]:
    """Screens whose images are bytes get them a media id (MediaStore.stage): the screens as
    saved, and the bytes for the outgoing rows to save with them."""
    staged: list[Screen] = []
    media: list[NewMedia] = []
    for screen in screens:
        image = screen.image
        if image is not None and image.media_id is None:
            if image.data is None:
                raise ValueError("an image needs bytes or a media id")
            media.append(deps.media.stage(merchant_id, image.content_type, image.data))
            screen = replace(screen, image=replace(image, media_id=media[-1].id, data=None))
        staged.append(screen)
    return staged, media


async def deliver(deps: DialogDeps, account: AccountState, reply: Reply, *, priority: int = REPLY,
                  kind: str = "reply") -> list[str]:
    """Queue the reply's screens for the account's chat, in order; returns the outgoing ids.

    The toast (a button's immediate answer) is not queued: the adapter answers the
    button press itself.
    """
    screens, media = stage_images(deps, account.merchant_id, reply.screens)
    return await enqueue(deps.ctx, [
        NewOutgoing(merchant_id=account.merchant_id, bot_id=account.bot_id,
                    channel_account_id=account.id, chat_id=account.chat_id,
                    body=screen.to_body(), priority=priority, kind=kind)
        for screen in screens], hand_to=deps.outgoing, blocked=account.blocked, media=media)
