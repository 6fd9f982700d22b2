"""Updates a Telegram user produces in a private chat, shaped as the Bot API sends them."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

_update_ids = itertools.count(700_000_001)

class Person:
    """A Telegram user in a private chat with a bot; each method returns one realistic update."""

    def __init__(self, user_id: int = 111_222_333, first_name: str = "Анна",
                 last_name: str | None = "Смирнова", language_code: str | None = "ru",
                 username: str | None = "anna_s") -> None:
        self.user_id = user_id
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            self.user["last_name"] = last_name
        if username:
            self.user["username"] = username
        if language_code:
            self.user["language_code"] = language_code
        self.chat = {"id": user_id, "type": "private", "first_name": first_name}
        self._message_ids = itertools.count(1)

    def _update(self, **body: Any) -> dict[str, Any]:
        return {"update_id": next(_update_ids), **body}

    def _message(self, **content: Any) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "from": self.user, "chat": self.chat,
                "date": int(time.time()), **content}

    def text(self, text: str) -> dict[str, Any]:
        message = self._message(text=text)
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._update(message=message)

    def start(self, payload: str | None = None) -> dict[str, Any]:
        """/start, as Telegram sends it after a t.me/<bot>?start=<payload> link."""
        return self.text("/start" + (f" {payload}" if payload else ""))

    def contact(self, phone: str, *, user_id: int | None | bool = True,
                first_name: str | None = None) -> dict[str, Any]:
        """A shared contact; `user_id=True` is the sender's own, an int someone else's, None none."""
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name or self.user["first_name"]}
        if user_id is True:
            contact["user_id"] = self.user_id
        elif isinstance(user_id, int) and user_id is not False:
            contact["user_id"] = user_id
        return self._update(message=self._message(contact=contact))

    def photo(self, file_id: str, caption: str | None = None, sizes: int = 3) -> dict[str, Any]:
        """A photo in several sizes, the biggest (the one `file_id` names) last."""
        photo = [{"file_id": f"{file_id}_s{i}", "file_unique_id": f"s{i}{file_id[-6:]}",
                  "width": 90 * (i + 1), "height": 60 * (i + 1), "file_size": 1000 * (i + 1)}
                 for i in range(sizes - 1)]
        photo.append({"file_id": file_id, "file_unique_id": "big" + file_id[-6:], "width": 1280,
                      "height": 853, "file_size": 100_000})
        content: dict[str, Any] = {"photo": photo}
        if caption:
            content["caption"] = caption
        return self._update(message=self._message(**content))

    def callback(self, data: str, message: dict[str, Any] | int) -> dict[str, Any]:
        """A press on an inline button of a message the bot sent (its message dict or id)."""
        if isinstance(message, int):
            message = {"message_id": message, "date": int(time.time()), "chat": self.chat,
                       "text": "…"}
        return self._update(callback_query={
            "id": str(secrets.randbits(63)), "from": self.user, "message": message,
            "chat_instance": str(-secrets.randbits(62)), "data": data})

    def _member_change(self, old: str, new: str, bot_user: dict[str, Any]) -> dict[str, Any]:
        return self._update(my_chat_member={
            "chat": self.chat, "from": self.user, "date": int(time.time()),
            "old_chat_member": _member(old, bot_user), "new_chat_member": _member(new, bot_user)})

    def blocked(self, bot_id: int = 6_000_000_001) -> dict[str, Any]:
        return self._member_change("member", "kicked", _bot_user(bot_id))

    def unblocked(self, bot_id: int = 6_000_000_001) -> dict[str, Any]:
        return self._member_change("kicked", "member", _bot_user(bot_id))

    def edited(self, message_id: int, text: str) -> dict[str, Any]:
        message = {"message_id": message_id, "from": self.user, "chat": self.chat,
                   "date": int(time.time()) - 60, "edit_date": int(time.time()), "text": text}
        return self._update(edited_message=message)

    def sticker(self) -> dict[str, Any]:
        return self._update(message=self._message(sticker={
            "file_id": "CAACAgIAAxkBAAIBP2", "file_unique_id": "AgADbwADr8ZRGg", "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "👍"}))

    def document(self) -> dict[str, Any]:
        return self._update(message=self._message(document={
            "file_id": "BQACAgIAAxkBAAIBQ2", "file_unique_id": "AgADcgAD", "file_name": "чек.pdf",
            "mime_type": "application/pdf", "file_size": 34567}))


def _member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    return {"status": status, "user": user, **({"until_date": 0} if status == "kicked" else {})}


def _bot_user(bot_id: int) -> dict[str, Any]:
    return {"id": bot_id, "is_bot": True, "first_name": "Кофейня", "username": "kartochka_test_bot"}

