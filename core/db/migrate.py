"""Apply and check Alembic migrations from code (serve, migrate, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.attributes["url"] = url
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` over the engine's own connection."""

    def _run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def check(engine: AsyncEngine) -> None:
    """Raise if the models and the migrations differ (alembic check)."""

    def _run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.check(config)

    async with engine.connect() as conn:
        await conn.run_sync(_run)
