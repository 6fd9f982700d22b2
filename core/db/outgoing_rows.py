"""Saving a reply's outgoing rows claimed when its chat is free: PostgreSQL's way and SQLite's twin.

The pictures the rows show (`media` rows, by id in the bodies) are saved with them: all or none.

A reply to someone talking now is saved already claimed ("sending", due now) when nothing of
its chat waits before it and no other process is starting to send to that chat; otherwise it
is saved queued as given, for the dispatchers' claim.

- PostgreSQL: one statement, the pictures in a CTE of it. The chat is held by a
  transaction-scoped advisory lock (the one a claim takes, services.outgoing_claim.lock_chat),
  and the queue check must see what committed before that lock was taken. One plain
  statement's snapshot is older than its lock, so both run in the function
  outgoing_chat_free() (see its migration), whose check is a statement of its own; the insert
  calls it once.
- SQLite: one process, one writer at a time: the pictures, the check and the insert in one
  write transaction, no lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, or_, select, text

from core.db.base import UTCDateTime, insert_columns, table_of
from core.db.engine import Database
from core.db.models import Media, OutgoingMessage

Row = dict[str, Any]
COLUMNS = ("id", "merchant_id", "bot_id", "channel_account_id", "chat_id", "priority", "kind",
           "body", "status", "attempts", "not_before", "created_at")
# Built once: every message is saved first.
INSERT = insert_columns(table_of(OutgoingMessage), COLUMNS)
MEDIA_COLUMNS = ("id", "merchant_id", "content_type", "size", "sha256", "data", "created_at")
INSERT_MEDIA = insert_columns(table_of(Media), MEDIA_COLUMNS)
# A chat with rows queued or being sent: nothing new may go before them. (outgoing_chat_free()
# asks the same in SQL: keep the two alike.)
QUEUED = (select(OutgoingMessage.id)
          .where(OutgoingMessage.bot_id == bindparam("bot_id"),
                 OutgoingMessage.chat_id == bindparam("chat_id"),
                 or_(OutgoingMessage.status == "queued", OutgoingMessage.status == "sending"))
          .limit(1))
_SAVE_CLAIMING = text("""
    WITH pictures AS (
        INSERT INTO media (id, merchant_id, content_type, size, sha256, data, created_at)
        SELECT p.id, p.merchant_id, p.content_type, p.size, p.sha256, p.data, :now
        FROM unnest(CAST(:media_id AS varchar[]), CAST(:media_merchant_id AS varchar[]),
                    CAST(:media_content_type AS varchar[]), CAST(:media_size AS integer[]),
                    CAST(:media_sha256 AS varchar[]), CAST(:media_data AS bytea[]))
            AS p(id, merchant_id, content_type, size, sha256, data)),
    chat AS MATERIALIZED (SELECT outgoing_chat_free(:key, :bot_id, :chat_id) AS free)
    INSERT INTO outgoing_messages (id, merchant_id, bot_id, channel_account_id, chat_id, priority,
                                   kind, body, status, attempts, not_before, created_at)
    SELECT r.id, r.merchant_id, :bot_id, r.channel_account_id, :chat_id, r.priority, r.kind, r.body,
           CASE WHEN chat.free THEN 'sending' ELSE 'queued' END, 0,
           CASE WHEN chat.free THEN :now ELSE r.not_before END, :now
    FROM chat, json_to_recordset(CAST(:rows AS json)) AS r(
        id varchar, merchant_id varchar, channel_account_id varchar, priority integer,
        kind varchar, body json, not_before timestamptz)
    RETURNING status""").bindparams(bindparam("now", type_=UTCDateTime())).columns(status=String)


def chat_key(bot_id: str, chat_id: str) -> int:
    """The chat's advisory lock key (PostgreSQL)."""
    digest = hashlib.blake2b(f"{bot_id}:{chat_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def claimed(row: Row, now: datetime) -> Row:
    """A queued row as saved claimed: being sent, from now."""
    return {**row, "status": "sending", "not_before": now}


async def save_for_chat(db: Database, rows: Sequence[Row], now: datetime,
                        media: Sequence[Row] = ()) -> bool:
    """Save queued `rows` (whole rows of COLUMNS, all of one chat), claimed instead when their
    chat is free, and the `media` rows (of MEDIA_COLUMNS) they show; True when claimed."""
    bot_id, chat_id = rows[0]["bot_id"], rows[0]["chat_id"]
    if any((row["bot_id"], row["chat_id"]) != (bot_id, chat_id) for row in rows):
        raise ValueError("rows of one chat only: the chat is what is held")
    if db.is_sqlite:
        async with db.direct(write=True, atomic=True) as statements:
            if media:
                await statements.run(INSERT_MEDIA, media)
            free = not await statements.rows(QUEUED, {"bot_id": bot_id, "chat_id": chat_id})
            await statements.run(INSERT, [claimed(row, now) for row in rows] if free else rows)
        return free
    document = json.dumps([{
        "id": row["id"], "merchant_id": row["merchant_id"],
        "channel_account_id": row["channel_account_id"], "priority": row["priority"],
        "kind": row["kind"], "body": row["body"], "not_before": _utc(row["not_before"]),
    } for row in rows])
    async with db.direct(write=True) as statements:
        saved = await statements.rows(_SAVE_CLAIMING, {
            "key": chat_key(bot_id, chat_id), "bot_id": bot_id, "chat_id": chat_id, "now": now,
            "rows": document, **{f"media_{column}": [picture[column] for picture in media]
                                 for column in MEDIA_COLUMNS[:-1]}})
    return bool(saved[0][0] == "sending")


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:  # as UTCDateTime refuses one: its zone would be the server's
        raise ValueError("naive datetime given to a UTC column")
    return moment.isoformat()
