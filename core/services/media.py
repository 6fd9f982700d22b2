"""Media bytes (photos from customers, card images) in the database, by our own id."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from core.db.models import Media
from core.ids import new_id
from core.services.context import CoreContext


class DbMediaStore:
    """The MediaStore port on the `media` table: put bytes, get them back by id."""

    def __init__(self, ctx: CoreContext) -> None:
        self.ctx = ctx

    async def put(self, merchant_id: str, content_type: str, data: bytes) -> str:
        """Store the bytes once; returns our media id."""
        media_id = new_id("med")
        async with self.ctx.uow() as uow:
            uow.session.add(Media(
                id=media_id, merchant_id=merchant_id, content_type=content_type, size=len(data),
                sha256=hashlib.sha256(data).hexdigest(), data=data, created_at=self.ctx.now()))
            await uow.commit()
        return media_id

    async def get(self, merchant_id: str, media_id: str) -> tuple[str, bytes] | None:
        """(content type, bytes), or None when unknown, another merchant's, or erased."""
        async with self.ctx.db.read() as session:
            row = (await session.execute(select(Media.content_type, Media.data).where(
                Media.id == media_id, Media.merchant_id == merchant_id))).first()
        if row is None or row.data is None:
            return None
        return row.content_type, row.data
