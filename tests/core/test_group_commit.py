"""Group commit: callers wait for their own write, share transactions under load, hear failures."""

from __future__ import annotations

import asyncio

import pytest

from core.services.group_commit import GroupCommit


async def test_items_arriving_during_a_write_go_together_in_the_next():
    writes: list[list[int]] = []
    gate = asyncio.Event()

    async def write(items: list[int]) -> None:
        writes.append(items)
        if len(writes) == 1:
            await gate.wait()

    marks = GroupCommit(write)
    first = asyncio.create_task(marks.add(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(marks.add(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *rest])  # nobody returns before their write
    gate.set()
    await asyncio.gather(first, *rest)
    assert writes == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_every_caller_in_it_and_the_next_write_goes_on():
    calls = 0

    async def write(items: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("the database went away")

    marks = GroupCommit(write)
    with pytest.raises(ConnectionResetError):
        await marks.add("a")
    await marks.add("b")  # written
    assert calls == 2


async def test_a_writer_cut_short_leaves_no_caller_waiting():
    async def write(_items: list[int]) -> None:
        await asyncio.Event().wait()

    marks = GroupCommit(write)
    caller = asyncio.create_task(marks.add(1))
    await asyncio.sleep(0)
    assert marks._writer is not None
    marks._writer.cancel()
    with pytest.raises(RuntimeError, match="stopped"):
        await asyncio.wait_for(caller, timeout=5)
