"""Reading the file: bytes to rows of named cells, each with the physical line it starts on.

UTF-8 (with or without a BOM) or cp1251, `,` or `;` between values, a header line naming
the columns (case-insensitive; only phone is required). Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from core.services.imports.results import RowError

COLUMNS = ("phone", "card", "name", "birth_date", "gender", "tier", "balance", "balance_expires_at")


@dataclass
class CsvRows:
    """The readable rows of a file as (line, {column: stripped cell}), and the file's own errors."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    count: int = 0  # non-blank lines after the header, readable or not


def decode_csv(data: bytes) -> str | RowError:
    """The text of the file: UTF-8 (with or without a BOM), else cp1251."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return RowError(1, "file", "the file is UTF-16; save it as CSV in UTF-8 or cp1251")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return RowError(line, "file", "the file is neither UTF-8 nor cp1251 text")


def detect_delimiter(text: str) -> str:
    """`;` or `,`: whichever the header line has more of (`,` for a single column)."""
    header = text.splitlines()[0] if text else ""
    return ";" if header.count(";") > header.count(",") else ","


def read_csv(data: bytes) -> CsvRows:
    """Decode, find the delimiter, check the header and split the rows; blank rows are skipped."""
    text = decode_csv(data)
    if isinstance(text, RowError):
        return CsvRows(errors=[text])
    delimiter = detect_delimiter(text)
    parsed = CsvRows()
    records = _records(text, delimiter, parsed.errors)
    header = next(records, None)
    if header is None:
        if not parsed.errors:
            parsed.errors.append(
                RowError(1, "file", "the file is empty; the first line must name the columns"))
        return parsed
    columns = _read_header(header[1], parsed.errors)
    if "phone" not in columns:
        return parsed
    for line, cells in records:
        _add_row(parsed, line, cells, columns, delimiter)
    return parsed


def _records(text: str, delimiter: str, errors: list[RowError]) -> Iterator[tuple[int, list[str]]]:
    """Each record with the physical line it starts on (a quoted value may span lines).

    Stops at the first record the csv module cannot read, reporting it.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    consumed = 0
    while True:
        line = consumed + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(RowError(line, "file", f"cannot read this line: {exc}"))
            return
        consumed = reader.line_num
        yield line, cells


def _read_header(cells: Sequence[str], errors: list[RowError]) -> list[str | None]:
    """Column names in order; None where a column is unknown or repeated (reported)."""
    columns: list[str | None] = []
    for cell in cells:
        name = cell.strip().lstrip("\ufeff").lower()
        if name not in COLUMNS:
            shown = repr(cell.strip()) if cell.strip() else f"column {len(columns) + 1}"
            errors.append(RowError(1, "header", f"unknown column {shown}; expected {', '.join(COLUMNS)}"))
            columns.append(None)
        elif name in columns:
            errors.append(RowError(1, "header", f"column {name!r} appears twice"))
            columns.append(None)
        else:
            columns.append(name)
    if "phone" not in columns:
        errors.append(RowError(1, "phone", "the header has no 'phone' column; it is required"))
    return columns


def _add_row(
    parsed: CsvRows, line: int, cells: Sequence[str], columns: Sequence[str | None], delimiter: str
) -> None:
    """Count a non-blank row and keep its non-empty cells by column, or report it has too many."""
    values = [c.strip() for c in cells]
    if not any(values):
        return
    parsed.count += 1
    if len(values) > len(columns):
        parsed.errors.append(RowError(
            line, "row",
            f"{len(values)} values but the header names {len(columns)} columns; "
            f"put values that contain {delimiter!r} in double quotes",
        ))
        return
    parsed.rows.append((line, {name: value for name, value in zip(columns, values, strict=False)
                               if name is not None and value}))
