"""Telegram tests: the fake Bot API over real HTTP, the real app with its webhook, a connected bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.container import Core
from app.web import create_app
from core.config import Settings
from core.services import bots
from core.services.bots import BotInfo
from tests.bots.telegram.chat import Telegram
from tests.fakes.telegram import FakeTelegram, Person

PUBLIC_URL = "https://loyalty.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def public_url() -> str | None:
    """PUBLIC_URL for the app: webhooks; a test module sets None for long polling."""
    return PUBLIC_URL


@pytest.fixture
def settings(database_url: str, fake: FakeTelegram, public_url: str | None) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        api_key_cache_seconds=0,
        telegram_api_url=fake.url,
        public_url=public_url,
        telegram_poll_seconds=2,
        telegram_worker_poll_seconds=0.2,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def token(fake: FakeTelegram) -> str:
    return fake.add_bot(username="coffee_club_bot")


@pytest.fixture
async def bot(core: Core, merchant_id: str, fake: FakeTelegram, token: str) -> BotInfo:
    """A connected Telegram bot (as `bot add` leaves it)."""
    fake_bot = fake.bots[token]
    return await bots.add_bot(core.ctx, merchant_id, "telegram", token, username=fake_bot.username,
                              platform_bot_id=str(fake_bot.id))


@pytest.fixture
async def telegram(core: Core, fake: FakeTelegram, bot: BotInfo, token: str) -> AsyncIterator[Telegram]:
    app = create_app(core)
    async with TestClient(TestServer(app)) as client:
        yield Telegram(client=client, core=core, fake=fake, bot=bot, token=token)


@pytest.fixture
def anna() -> Person:
    return Person(user_id=111_222_333, first_name="Анна", last_name="Смирнова")
