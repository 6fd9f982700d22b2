"""The Promotions text of every seed program, in Russian and English (snapshots)."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
import yaml

from bots.dialog.program_text import number, plural, program_text
from core.domain.program import parse_program
from tests.programs.harness import folders

UPDATE = os.environ.get("KARTOCHKA_UPDATE_SNAPSHOTS") == "1"
RU = ["бонус", "бонуса", "бонусов"]


@pytest.mark.parametrize("n, form", [(1, "бонус"), (2, "бонуса"), (5, "бонусов"), (11, "бонусов"),
                                     (21, "бонус"), (22, "бонуса"), (112, "бонусов"),
                                     (Decimal("1.5"), "бонуса"), (0, "бонусов")])
def test_russian_plural_forms(n, form):
    assert plural(n, RU, "ru") == form


def test_english_plural_and_numbers():
    assert plural(1, ["point", "points"], "en") == "point"
    assert plural(2, ["point", "points"], "en") == "points"
    assert number(Decimal("12.50"), "ru") == "12,5"
    assert number(Decimal(25000), "ru") == "25\u202f000"
    assert number(Decimal(25000), "en") == "25,000"


@pytest.mark.parametrize("folder", folders(), ids=lambda p: p.name)
@pytest.mark.parametrize("locale", ["ru", "en"])
def test_program_text_snapshot(folder, locale):
    document = yaml.safe_load((folder / "program.yaml").read_text(encoding="utf-8"))
    text = program_text(parse_program(document), locale)
    snapshot = folder / f"describe.{locale}.txt"
    if UPDATE:
        snapshot.write_text(text, encoding="utf-8")
    assert snapshot.exists(), f"no snapshot: run with KARTOCHKA_UPDATE_SNAPSHOTS=1 and read {snapshot}"
    assert text == snapshot.read_text(encoding="utf-8")
