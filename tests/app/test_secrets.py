"""SECRET_KEY: generated once beside SQLite (0600), required with PostgreSQL; secrets encrypted."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import select

from core.config import Settings
from core.db.models import MerchantSecret
from core.errors import ConfigurationError
from core.secrets_store import load_secret_key
from core.services.merchants import get_secret, set_secret


def test_generated_once_beside_the_sqlite_database_and_reused(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/k.db", _env_file=None)
    first = load_secret_key(settings)
    key_file = tmp_path / "k.db.secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_secret_key(settings) == first and len(first) >= 32


def test_a_readable_key_file_is_refused(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/k.db", _env_file=None)
    load_secret_key(settings)
    (tmp_path / "k.db.secret").chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_secret_key(settings)


def test_required_with_postgresql():
    settings = Settings(database_url="postgresql+asyncpg://u@h/db", _env_file=None)
    with pytest.raises(ConfigurationError, match="SECRET_KEY is required"):
        load_secret_key(settings)
    with pytest.raises(ConfigurationError, match="at least 32"):
        load_secret_key(Settings(database_url="postgresql+asyncpg://u@h/db", secret_key="short",
                                 _env_file=None))


async def test_merchant_secrets_are_encrypted_at_rest(core, merchant_id):
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    await set_secret(core.ctx, merchant_id, "telegram_token", token)
    async with core.ctx.db.read() as session:
        stored = await session.scalar(select(MerchantSecret.ciphertext))
    assert token not in stored and "AAHdqTcv" not in stored
    assert await get_secret(core.ctx, merchant_id, "telegram_token") == token


def test_an_empty_key_file_is_refused(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/k.db", _env_file=None)
    key_file = tmp_path / "k.db.secret"
    key_file.write_bytes(b"")
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="no usable key"):
        load_secret_key(settings)
