"""A started server's heap is frozen: later full collections do not walk start-up's objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.container import build_core
from app.heap import freeze_startup_heap
from app.web import create_app
from core.config import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the suite runs with the collector as it found it


async def test_startup_objects_leave_the_collected_generations(
        settings: Settings, unfrozen: None) -> None:
    core = await build_core(settings)
    try:
        create_app(core)
        alive = len(gc.get_objects())
        frozen = freeze_startup_heap()
        # Everything start-up left alive (the app, the core, the ORM, modules) is frozen:
        # a full collection now walks only what comes after.
        assert frozen >= alive * 0.9
        assert len(gc.get_objects()) < alive * 0.01
        made = [[i] for i in range(1000)]  # what serving makes is collected as usual
        assert len(gc.get_objects()) >= len(made)
    finally:
        await core.close()
