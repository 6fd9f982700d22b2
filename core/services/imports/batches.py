"""The batch size of the import: rows per write transaction, values per `IN (...)` query."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

BATCH_ROWS = 500


def chunks(items: Sequence[T], size: int = BATCH_ROWS) -> Iterator[list[T]]:
    """The items in consecutive lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
