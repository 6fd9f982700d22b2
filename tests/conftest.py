"""Shared fixtures: a migrated database per test (SQLite file, or a PostgreSQL schema)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.container import Core, build_core
from app.web import create_app
from core.config import Settings
from core.ports import FixedClock
from core.services.apikeys import create_key
from core.services.merchants import NewMerchant, create_merchant

PG_URL = os.environ.get("KARTOCHKA_TEST_POSTGRES_URL")
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite file per test; with KARTOCHKA_TEST_POSTGRES_URL, a fresh PostgreSQL schema."""
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name = "kt_" + secrets.token_hex(6)
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{name}"
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        api_key_cache_seconds=0,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def core(settings: Settings, clock: FixedClock) -> AsyncIterator[Core]:
    built = await build_core(settings, clock)
    yield built
    await built.close()


@pytest.fixture
async def merchant_id(core: Core) -> str:
    merchant = await create_merchant(core.ctx, NewMerchant(name="Кофейня", slug="coffee"))
    return merchant.id


@pytest.fixture
async def client(core: Core) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(core, background=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def bearer(core: Core, merchant_id: str, scope: str = "admin") -> dict[str, str]:
    _, token = await create_key(core.ctx, merchant_id, scope)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def auth(core: Core, merchant_id: str) -> dict[str, str]:
    return await bearer(core, merchant_id, "admin")
