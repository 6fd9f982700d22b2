"""A `Screen` in Telegram's terms: inline keyboards, reply keyboards (the phone prompt), photos."""

from __future__ import annotations

from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    WebAppInfo,
)

from bots.dialog.screens import Button, Prompt, Screen

CAPTION_LIMIT = 1024
CHOICES_PER_ROW = 2
PROMPT_FALLBACK_TEXT = "⬇️"  # a reply keyboard needs a message; this one has no words to translate


def inline_button(button: Button) -> InlineKeyboardButton:
    if button.webapp is not None:
        return InlineKeyboardButton(text=button.text, web_app=WebAppInfo(url=button.webapp))
    if button.url is not None:
        return InlineKeyboardButton(text=button.text, url=button.url)
    return InlineKeyboardButton(text=button.text, callback_data=button.action or "noop")


def inline_markup(screen: Screen) -> InlineKeyboardMarkup | None:
    rows = [[inline_button(b) for b in row] for row in screen.buttons if row]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def prompt_markup(prompt: Prompt) -> ReplyKeyboardMarkup:
    """Telegram offers request_contact only on a reply keyboard."""
    if prompt.kind == "phone":
        rows = [[KeyboardButton(text=prompt.label or "📱", request_contact=True)]]
    else:
        choices = list(prompt.choices)
        rows = [[KeyboardButton(text=c) for c in choices[i:i + CHOICES_PER_ROW]]
                for i in range(0, len(choices), CHOICES_PER_ROW)]
    return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=True)


def reply_markup(screen: Screen) -> ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    """The reply keyboard the screen shows (a prompt) or takes away, if any."""
    if screen.prompt is not None:
        return prompt_markup(screen.prompt)
    if screen.remove_prompt:
        return ReplyKeyboardRemove()
    return None


def prompt_text(prompt: Prompt) -> str:
    """The text of a message sent only to carry a reply keyboard."""
    return prompt.label or PROMPT_FALLBACK_TEXT


def photo_file(screen: Screen, media: dict[str, bytes]) -> BufferedInputFile | None:
    """The screen's picture as an upload, from the bytes the dispatcher loaded; None without one."""
    if screen.image is None or screen.image.media_id is None:
        return None
    data = media.get(screen.image.media_id)
    if data is None:
        raise LookupError(f"no bytes for media {screen.image.media_id}")
    return BufferedInputFile(data, filename=screen.image.filename)


def fits_caption(text: str) -> bool:
    return len(text) <= CAPTION_LIMIT
