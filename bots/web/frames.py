"""The widget's websocket protocol: client frames checked into `Incoming`, server frames built.

Client -> server (JSON text frames): `hello` (visitor token, last message id seen,
language, deep-link payload), `start`, `text`, `button` (action and the id of the
message it sits on), `sign_out` (forget this visitor: the token stops working), `ping`;
a photo is one binary frame: a JSON header line (`{"type": "photo", "ref": ...}` and a
newline) followed by the image bytes.
Each frame the client wants acknowledged carries its own `ref`.

Server -> client: `hello`, `message` (one saved outgoing row), `toast`, `ack`,
`error` (a code the widget words in the visitor's language), `pong`, `signed_out` (to
every open tab of a visitor who signed out, before their sockets close: drop what you keep).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bots.dialog.screens import MAX_ACTION_BYTES, MAX_START_PAYLOAD

MAX_TEXT = 4096  # characters a visitor may type in one message
MAX_TEXT_FRAME = 32 * 1024  # bytes of one JSON frame (4096 characters escaped as \uXXXX fit)
MAX_PHOTO = 5 * 1024 * 1024
MAX_PHOTO_HEADER = 256
REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")
PAYLOAD = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_START_PAYLOAD}}}$")
LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
TOKEN_MAX = 128
MAGIC = (  # what an upload's first bytes must be: the content type is ours, never the client's
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


class FrameError(Exception):
    """A frame the server refuses; `code` goes back in an error frame, the socket stays open."""

    def __init__(self, code: str, ref: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.ref = ref


@dataclass(frozen=True)
class Incoming:
    """One checked client frame."""

    type: str  # hello | start | text | button | photo | sign_out | ping
    ref: str | None = None
    text: str | None = None
    action: str | None = None
    message: str | None = None
    payload: str | None = None
    visitor: str | None = None
    after: str | None = None
    lang: str | None = None
    photo: bytes | None = None
    photo_type: str | None = None


def _opt(data: dict[str, Any], key: str, pattern: re.Pattern[str], ref: str | None) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise FrameError("malformed", ref)
    return value


def parse_text(raw: str) -> Incoming:
    """Check one JSON frame from the widget."""
    if len(raw.encode()) > MAX_TEXT_FRAME:
        raise FrameError("too_long")
    try:
        data = json.loads(raw)
    except ValueError:
        raise FrameError("malformed") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError("malformed")
    ref = data.get("ref")
    ref = ref if isinstance(ref, str) and REF.match(ref) else None
    kind = data["type"]
    if kind == "ping":
        return Incoming("ping")
    if kind == "hello":
        visitor = data.get("visitor")
        if visitor is not None and (not isinstance(visitor, str) or len(visitor) > TOKEN_MAX):
            raise FrameError("malformed")
        return Incoming("hello", visitor=visitor or None, after=_opt(data, "after", MESSAGE_ID, None),
                        lang=_opt(data, "lang", LANG, None),
                        payload=_opt(data, "start", PAYLOAD, None))
    if ref is None:
        raise FrameError("malformed")
    if kind == "start":
        return Incoming("start", ref=ref, payload=_opt(data, "payload", PAYLOAD, ref))
    if kind == "sign_out":
        return Incoming("sign_out", ref=ref)
    if kind == "text":
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise FrameError("malformed", ref)
        if len(text) > MAX_TEXT:
            raise FrameError("too_long", ref)
        return Incoming("text", ref=ref, text=text.strip())
    if kind == "button":
        action = data.get("action")
        if not isinstance(action, str) or not action or len(action.encode()) > MAX_ACTION_BYTES:
            raise FrameError("malformed", ref)
        return Incoming("button", ref=ref, action=action, message=_opt(data, "message", MESSAGE_ID, ref))
    raise FrameError("unknown_type", ref)


def parse_photo(raw: bytes) -> Incoming:
    """Check one binary frame: a JSON header line, then a JPEG or PNG of at most 5 MB."""
    end = raw.find(b"\n", 0, MAX_PHOTO_HEADER + 1)
    if end < 0:
        raise FrameError("malformed")
    try:
        header = json.loads(raw[:end])
    except ValueError:
        raise FrameError("malformed") from None
    ref = header.get("ref") if isinstance(header, dict) else None
    if not isinstance(ref, str) or not REF.match(ref) or header.get("type") != "photo":
        raise FrameError("malformed")
    data = raw[end + 1:]
    if len(data) > MAX_PHOTO:
        raise FrameError("photo_too_large", ref)
    content_type = next((kind for magic, kind in MAGIC if data.startswith(magic)), None)
    if content_type is None:
        raise FrameError("photo_type", ref)
    return Incoming("photo", ref=ref, photo=data, photo_type=content_type)


def _button(button: dict[str, Any]) -> dict[str, str]:
    out = {"text": str(button.get("text", ""))}
    if button.get("action"):
        out["action"] = str(button["action"])
    link = button.get("url") or button.get("webapp")
    if isinstance(link, str) and link.startswith(("https://", "http://")):
        out["url"] = link
    return out


def message_frame(row_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A saved outgoing row as the widget shows it (pictures by media id, fetched separately)."""
    frame: dict[str, Any] = {"type": "message", "id": row_id, "text": body.get("text", "")}
    image = body.get("image")
    if isinstance(image, dict) and image.get("media_id"):
        frame["image"] = {"media_id": image["media_id"], "filename": image.get("filename", "")}
    buttons = [[_button(b) for b in row if isinstance(b, dict)] for row in body.get("buttons", [])]
    if buttons:
        frame["buttons"] = [row for row in buttons if row]
    prompt = body.get("prompt")
    if isinstance(prompt, dict):
        frame["prompt"] = {"kind": prompt.get("kind"), "choices": list(prompt.get("choices") or [])}
    if body.get("remove_prompt"):
        frame["remove_prompt"] = True
    if body.get("replaces"):
        frame["replaces"] = body["replaces"]
    return frame


def error_frame(code: str, ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code}
    if ref is not None:
        frame["ref"] = ref
    return frame
