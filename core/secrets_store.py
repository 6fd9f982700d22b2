"""The process secret: SECRET_KEY from settings, or a 0600 file beside a SQLite database.

Merchant secrets (bot tokens, gateway credentials) are encrypted with a key derived
from it, so a copied database file alone reveals none of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.config import Settings
from core.errors import ConfigurationError


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL, or None for in-memory and other databases."""
    if not database_url.startswith("sqlite"):
        return None
    _, _, rest = database_url.partition(":///")
    if not rest or rest.startswith(":memory:"):
        return None
    return Path(rest.split("?", 1)[0])


def load_secret_key(settings: Settings) -> bytes:
    """The secret key: configured, or generated once beside the SQLite database and reused."""
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError("KARTOCHKA_SECRET_KEY must be at least 32 characters")
        return value.encode()
    db_file = sqlite_path(settings.database_url)
    if db_file is None:
        raise ConfigurationError(
            "KARTOCHKA_SECRET_KEY is required with this database (several processes share it)"
        )
    key_file = db_file.with_name(db_file.name + ".secret")
    if not key_file.exists():
        _generate(key_file)
    mode = key_file.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigurationError(f"{key_file} must be readable by its owner only (chmod 600)")
    key = key_file.read_bytes().strip()
    if len(key) < 32:
        raise ConfigurationError(f"{key_file} holds no usable key (at least 32 characters)")
    return key


def _generate(key_file: Path) -> None:
    """Write a new key atomically: a second process starting at once reads a whole key."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    temp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_urlsafe(48).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(temp, key_file)  # fails if another process won the race; its key stands
    except FileExistsError:
        pass
    finally:
        temp.unlink()


class SecretBox:
    """Encrypts merchant secrets at rest and derives purpose-bound keys."""

    def __init__(self, secret_key: bytes) -> None:
        self._root = secret_key
        self._fernet = Fernet(base64.urlsafe_b64encode(self.derive(b"kartochka:secrets:v1")))

    def derive(self, purpose: bytes, length: int = 32) -> bytes:
        """A key for one purpose, so no two uses share key material."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(
            self._root
        )

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("A stored secret cannot be decrypted with this SECRET_KEY") from exc

    def sign(self, purpose: bytes, message: bytes) -> str:
        """HMAC-SHA256 hex of `message` under a key for `purpose`."""
        return hmac.new(self.derive(purpose), message, hashlib.sha256).hexdigest()
