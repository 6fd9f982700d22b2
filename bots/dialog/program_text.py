"""A program in plain words, Russian and English, from core.domain.explain's items."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from core.domain.explain import describe
from core.domain.program import Program

TEMPLATES = Path(__file__).with_name("templates")
LOCALES = ("ru", "en")
WORDS = {  # plural forms of the units the texts count in
    "ru": {"day": ["день", "дня", "дней"], "month": ["месяц", "месяца", "месяцев"]},
    "en": {"day": ["day", "days"], "month": ["month", "months"]},
}


def plural(n: Decimal | int, forms: list[str], locale: str) -> str:
    """The form of a noun for `n`: 1 бонус, 2 бонуса, 5 бонусов; 1 point, 2 points."""
    if isinstance(n, Decimal) and n != n.to_integral_value():
        return forms[1]  # fractions: "1,5 бонуса", "1.5 points"
    whole = abs(int(n))
    if locale == "en":
        return forms[0] if whole == 1 else forms[1]
    if whole % 10 == 1 and whole % 100 != 11:
        return forms[0]
    if 2 <= whole % 10 <= 4 and not 12 <= whole % 100 <= 14:
        return forms[1]
    return forms[2]


def number(value: Decimal | int, locale: str = "ru") -> str:
    """12.50 → "12,5" in Russian, "12.5" in English; thousands with a thin space / comma."""
    d = Decimal(value)
    text = f"{d:,.2f}".rstrip("0").rstrip(".") if d != d.to_integral_value() else f"{int(d):,}"
    if locale == "ru":
        return text.replace(",", "\u202f").replace(".", ",")
    return text


@cache
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701 - plain text
    env.filters["num"] = number
    env.globals["plural"] = plural
    env.globals["words"] = WORDS
    return env


def program_text(program: Program, locale: str = "ru") -> str:
    """The Promotions screen's text for this program."""
    if locale not in LOCALES:
        locale = "ru"
    items = describe(program)
    forms = program.currency.ru if locale == "ru" else program.currency.en
    context: dict[str, Any] = {"items": items, "forms": forms, "locale": locale,
                               "title": program.title}
    text = _env().get_template(f"program.{locale}.j2").render(context)
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"
