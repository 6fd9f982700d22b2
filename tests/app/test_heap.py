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


def _tracked(obj: object) -> bool:
    """Whether a collection would walk `obj` (it is in one of the collected generations)."""
    return any(o is obj for o in gc.get_objects())


async def test_startup_objects_leave_the_collected_generations(
        settings: Settings, unfrozen: None) -> None:
    core = await build_core(settings)
    try:
        app = create_app(core)
        assert _tracked(app) and _tracked(core.ctx.__dict__)
        assert freeze_startup_heap() > 0
        # The app, the core and all they hold are out of every later collection's walk...
        assert not _tracked(app) and not _tracked(core.ctx.__dict__)
        # ...what serving makes afterwards is collected as usual.
        made = [[1], [2]]
        assert _tracked(made)
    finally:
        await core.close()
