"""Every seed program, replayed from its golden table through the REST API."""

from __future__ import annotations

import pytest

from tests.programs.harness import Replay, folders


@pytest.mark.parametrize("folder", folders(), ids=lambda p: p.name)
async def test_golden_table(folder, core, client, clock):
    await Replay(folder, core, client, clock).run()
