"""Anonymous visitors: an unguessable token kept by the browser, checked by its signature.

The token is `v1.<random>.<signature>`; the signature binds it to the merchant, so a
token made up by the client, or one from another merchant's chat, is refused (the
visitor gets a new identity). The account is keyed by a digest of the random part,
so the stored id is useless without the secret key, and the token is never stored.
"""

from __future__ import annotations

import hmac
import re
import secrets

from core.secrets_store import SecretBox

SIGN_PURPOSE = b"kartochka:web:visitor:v1"
ID_PURPOSE = b"kartochka:web:visitor-id:v1"
TOKEN = re.compile(r"^v1\.([A-Za-z0-9_-]{43})\.([0-9a-f]{32})$")


def _signature(box: SecretBox, merchant_id: str, nonce: str) -> str:
    return box.sign(SIGN_PURPOSE, f"{merchant_id}:{nonce}".encode())[:32]


def issue(box: SecretBox, merchant_id: str) -> str:
    """A new visitor token for this merchant's chat (256 random bits)."""
    nonce = secrets.token_urlsafe(32)
    return f"v1.{nonce}.{_signature(box, merchant_id, nonce)}"


def visitor_id(box: SecretBox, merchant_id: str, token: str | None) -> str | None:
    """The stable id of the visitor holding `token` (used as user and chat id), or None if forged."""
    match = TOKEN.match(token or "")
    if match is None:
        return None
    nonce, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(box, merchant_id, nonce)):
        return None
    return box.sign(ID_PURPOSE, f"{merchant_id}:{nonce}".encode())[:40]
