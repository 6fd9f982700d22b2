"""Phone numbers: parsed with `phonenumbers`, stored as E.164."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from core.errors import InvalidPhone


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, region: str = "RU") -> str:
    """E.164 form of `raw`, with `region` as the default country; InvalidPhone if not a number."""
    text = (raw or "").strip()
    if not text or len(text) > 32:
        raise InvalidPhone("Phone number is empty or too long")
    digits = "".join(ch for ch in text if ch.isdigit())
    # "79161234567" without "+" is common from tills and Telegram contacts.
    if not text.startswith("+") and len(digits) == 11 and digits[0] in "78" and region == "RU":
        text = "+7" + digits[1:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"Not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("Not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """+7916***4567: safe for logs and operator lists."""
    if len(phone) < 8:
        return "***"
    return phone[:5] + "***" + phone[-4:]


def phone_country(phone: str) -> str | None:
    """The country of an E.164 number ("RU", "KZ", ...): +7 is shared, the number tells which."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None
