"""What comes in from any channel (`Event`) and what goes out (`Screen`): the dialog's only vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ACTION_BYTES = 64  # Telegram's callback_data
MAX_START_PAYLOAD = 64  # Telegram's /start payload (MAX allows 128)

EVENT_KINDS = ("start", "text", "button", "contact", "photo", "other", "blocked", "unblocked")


@dataclass(frozen=True)
class Event:
    """One thing a person did in a channel, already translated by the adapter."""

    channel: str  # "telegram" | "vk" | "max" | "web"
    merchant_id: str
    bot_id: str  # our id of the bot (the web chat has one too)
    user_id: str  # the platform's id of the person
    chat_id: str
    kind: str  # one of EVENT_KINDS
    text: str | None = None
    payload: str | None = None  # deep-link payload (start) or button action (button)
    contact_phone: str | None = None
    contact_is_own: bool = False  # the adapter checked the contact belongs to the sender
    photo: bytes | None = None
    photo_type: str = "image/jpeg"
    message_ref: str | None = None  # the platform id of the message whose button was pressed
    language: str | None = None  # the platform's language hint, used on first contact only
    display_name: str | None = None
    client_ip: str | None = None  # only where a trusted proxy vouches for it
    # What the channel can show: a "share my phone" button (Telegram, MAX) or not (web, VK).
    contact_button: bool = False


@dataclass(frozen=True)
class Button:
    """An inline button: an action for the dialog, a link, or the mini-app."""

    text: str
    action: str | None = None
    url: str | None = None
    webapp: str | None = None

    def __post_init__(self) -> None:
        if self.action is not None and len(self.action.encode()) > MAX_ACTION_BYTES:
            raise ValueError(f"action {self.action!r} is longer than {MAX_ACTION_BYTES} bytes")


@dataclass(frozen=True)
class Prompt:
    """A reply prompt: "share my phone" or quick replies (Telegram shows them as a reply keyboard)."""

    kind: str  # "phone" | "choices"
    label: str | None = None  # the share-phone button's text
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    """A picture a screen carries: bytes when made, our media id once stored."""

    filename: str
    data: bytes | None = None
    media_id: str | None = None
    content_type: str = "image/png"


@dataclass(frozen=True)
class Screen:
    """What one message can carry on every platform."""

    text: str
    image: Image | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    prompt: Prompt | None = None
    remove_prompt: bool = False  # take away a reply keyboard shown before
    replaces: str | None = None  # the platform id of a message this one edits in place
    extra: dict[str, Any] = field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        """The JSON saved in the outgoing row (images by media id only)."""
        body: dict[str, Any] = {"text": self.text}
        if self.image is not None:
            if self.image.media_id is None:
                raise ValueError("store the image before saving the screen")
            body["image"] = {"media_id": self.image.media_id, "filename": self.image.filename,
                             "content_type": self.image.content_type}
        if self.buttons:
            body["buttons"] = [[{k: v for k, v in vars(b).items() if v is not None} for b in row]
                               for row in self.buttons]
        if self.prompt is not None:
            body["prompt"] = {"kind": self.prompt.kind, "label": self.prompt.label,
                              "choices": list(self.prompt.choices)}
        if self.remove_prompt:
            body["remove_prompt"] = True
        if self.replaces is not None:
            body["replaces"] = self.replaces
        if self.extra:
            body["extra"] = self.extra
        return body

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Screen:
        image = body.get("image")
        prompt = body.get("prompt")
        return cls(
            text=body["text"],
            image=Image(filename=image["filename"], media_id=image["media_id"],
                        content_type=image.get("content_type", "image/png")) if image else None,
            buttons=tuple(tuple(Button(**b) for b in row) for row in body.get("buttons", [])),
            prompt=Prompt(kind=prompt["kind"], label=prompt.get("label"),
                          choices=tuple(prompt.get("choices", []))) if prompt else None,
            remove_prompt=bool(body.get("remove_prompt")),
            replaces=body.get("replaces"),
            extra=body.get("extra", {}),
        )


@dataclass
class Reply:
    """The dialog's answer to one event: screens to send, and a short notice for a button press."""

    screens: list[Screen] = field(default_factory=list)
    toast: str | None = None
