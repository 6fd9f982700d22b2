"""Opaque, time-sortable ids: a prefix and 26 Crockford base32 characters (ULID layout)."""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as ``cus_01J...``; monotonic within this process."""
    global _last_ms, _last_rand
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_rand += 1
        else:
            _last_rand = secrets.randbits(79)
        _last_ms = now_ms
        value = (now_ms << 80) | _last_rand
    return f"{prefix}_{_encode(value, 26)}"


def random_code(length: int = 8) -> str:
    """A short human-friendly random code (referral codes)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def new_card_number() -> str:
    """A 13-digit virtual card number in the in-store range 2xxx, Luhn-checked."""
    body = "2" + "".join(str(secrets.randbelow(10)) for _ in range(11))
    return body + luhn_digit(body)
