"""What an import reports: the counts of what it did and every problem of the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class RowError(NamedTuple):
    """One problem of the file: the physical line (the header is line 1), the column, what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportResult:
    """What an import did (or, on a dry run, would do) and every problem found."""

    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    balances_credited: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return not self.dry_run and not self.errors
