"""Media bytes (photos from customers, card images) in the database, by our own id."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.db.models import Media
from core.db.outgoing_rows import INSERT_MEDIA
from core.ids import new_id
from core.ports import NewMedia
from core.services.context import CoreContext

# What this process put lately, kept in memory for the dispatcher that sends it a moment later
# (a card image is put and read back once per "show my card"): HOT_SECONDS, HOT_BYTES at most.
HOT_SECONDS = 15.0  # only this process forgets at erasure: keep it short (others: this long)
HOT_BYTES = 16 * 1024 * 1024
_HOT: OrderedDict[str, tuple[float, str, str, bytes]] = OrderedDict()  # id -> (at, merchant, type, data)
_hot_size = 0


def _remember(media_id: str, merchant_id: str, content_type: str, data: bytes) -> None:
    global _hot_size
    _HOT[media_id] = (time.monotonic(), merchant_id, content_type, data)
    _hot_size += len(data)
    while _HOT and _hot_size > HOT_BYTES:
        _, (_at, _merchant, _type, old) = _HOT.popitem(last=False)
        _hot_size -= len(old)


def forget(media_ids: Iterable[str]) -> None:
    """Erased media leave memory too (see core.services.profile)."""
    global _hot_size
    for media_id in media_ids:
        found = _HOT.pop(media_id, None)
        if found is not None:
            _hot_size -= len(found[3])


def media_row(media: NewMedia, now: datetime) -> dict[str, Any]:
    """The `media` row of staged bytes (outgoing_rows.MEDIA_COLUMNS)."""
    return {"id": media.id, "merchant_id": media.merchant_id, "content_type": media.content_type,
            "size": len(media.data), "sha256": hashlib.sha256(media.data).hexdigest(),
            "data": media.data, "created_at": now}


class DbMediaStore:
    """The MediaStore port on the `media` table: put bytes, get them back by id."""

    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def put(self, merchant_id: str, content_type: str, data: bytes) -> str:
        """Store the bytes once; returns our media id."""
        media = self.stage(merchant_id, content_type, data)
        async with self.ctx.db.direct(write=True) as db:
            await db.run(INSERT_MEDIA, media_row(media, self.ctx.now()))
        return media.id

    def stage(self, merchant_id: str, content_type: str, data: bytes) -> NewMedia:
        """An id for bytes the message showing them saves (outgoing.enqueue's `media`); this
        process's `get` finds them meanwhile (if that save fails, they are forgotten in
        HOT_SECONDS)."""
        media = NewMedia(new_id("med"), merchant_id, content_type, data)
        _remember(media.id, merchant_id, content_type, data)
        return media

    async def get(self, merchant_id: str, media_id: str) -> tuple[str, bytes] | None:
        """(content type, bytes), or None when unknown, another merchant's, or erased."""
        hot = _HOT.get(media_id)
        if hot is not None and time.monotonic() - hot[0] < HOT_SECONDS:
            return (hot[2], hot[3]) if hot[1] == merchant_id else None
        async with self.ctx.db.read() as session:
            row = (await session.execute(select(Media.content_type, Media.data).where(
                Media.id == media_id, Media.merchant_id == merchant_id))).first()
        if row is None or row.data is None:
            return None
        return row.content_type, row.data
