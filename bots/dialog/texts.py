"""Every customer text by a stable key, Russian first and English, as jinja2 templates.

Texts live in `texts/<locale>/<flow>.yaml` (key -> template). A merchant's override
for a key (later, from the console) is passed in and wins over the shipped text.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template

from bots.dialog.program_text import LOCALES, number, plural

TEXTS = Path(__file__).with_name("texts")


@cache
def _env() -> Environment:
    env = Environment(undefined=StrictUndefined, autoescape=False,  # noqa: S701 - plain text
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["num"] = number
    return env


@cache
def catalogue(locale: str) -> dict[str, str]:
    """All shipped texts of one locale; a key defined twice is a packaging error."""
    texts: dict[str, str] = {}
    for path in sorted((TEXTS / locale).glob("*.yaml")):
        for key, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            if key in texts:
                raise ValueError(f"text key {key!r} is defined twice ({path.name})")
            texts[key] = str(value)
    return texts


@cache
def _compiled(locale: str, source: str) -> Template | str:
    """The template, or the finished text when `source` has no jinja syntax at all (a button's
    label, say): as rendering it would give, without a render."""
    if "{" not in source and "\r" not in source:
        return source.strip()
    return _env().from_string(source)


def pick_locale(hint: str | None) -> str:
    """The platform's language hint to one of ours: "en-US" -> "en", anything else -> "ru"."""
    if hint and hint.split("-")[0].lower() in LOCALES:
        return hint.split("-")[0].lower()
    return "ru"


class Texts:
    """Texts in one locale with the merchant's currency name: `t("menu.title", name=...)`."""

    def __init__(self, locale: str, currency_forms: list[str] | None = None,
                 overrides: dict[str, str] | None = None) -> None:
        self.locale = locale if locale in LOCALES else "ru"
        default_forms = {"ru": ["бонус", "бонуса", "бонусов"], "en": ["point", "points"]}
        self.forms = currency_forms or default_forms[self.locale]
        self.overrides = overrides or {}

    def __call__(self, key: str, **context: Any) -> str:
        source = self.overrides.get(key) or catalogue(self.locale).get(key)
        if source is None:
            source = catalogue("ru").get(key)
        if source is None:
            raise KeyError(f"no text {key!r}")
        compiled = _compiled(self.locale, source)
        if isinstance(compiled, str):
            return compiled
        context.setdefault("points", self.points)
        context.setdefault("plural", self.plural)
        context.setdefault("num", self.num)
        return compiled.render(context).strip()

    def points(self, amount: Decimal | int) -> str:
        """"5 бонусов", "1 point": the amount with the merchant's currency name."""
        return f"{number(amount, self.locale)} {plural(amount, self.forms, self.locale)}"

    def plural(self, n: Decimal | int, forms: list[str]) -> str:
        return plural(n, forms, self.locale)

    def num(self, value: Decimal | int) -> str:
        return number(value, self.locale)
