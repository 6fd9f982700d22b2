"""Apply and check Alembic migrations from code (serve, migrate, tests)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*=\s*['\"](\w+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*=\s*['\"](\w+)['\"]", re.M)


def head_revision() -> str:
    """The newest migration, read from the files (no Alembic import: the CLI starts fast)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        if found := _REVISION.search(source):
            revisions.add(found.group(1))
        if down := _DOWN.search(source):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {sorted(heads)}")
    return heads.pop()


async def is_current(engine: AsyncEngine) -> bool:
    """True when the database is already at the newest migration."""
    try:
        async with engine.connect() as conn:
            current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return False
    return bool(current == head_revision())


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    # Alembic binds sys.stdout as a default argument at import time; pass today's.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.attributes["url"] = url
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` over the engine's own connection."""

    if revision == "head" and await is_current(engine):
        return

    def _run(connection: Any) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def check(engine: AsyncEngine) -> None:
    """Raise if the models and the migrations differ (alembic check)."""

    def _run(connection: Any) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.check(config)

    async with engine.connect() as conn:
        await conn.run_sync(_run)
