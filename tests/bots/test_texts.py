"""Customer texts: shipped and overridden, plain and templated, read the same however made."""

from __future__ import annotations

from decimal import Decimal

from bots.dialog.texts import LOCALES, Texts, _env, catalogue


def test_a_plain_text_reads_exactly_as_its_template_would_render():
    """Texts without jinja syntax (most buttons) are handed out without a render."""
    plain = 0
    for locale in LOCALES:
        for key, source in catalogue(locale).items():
            if "{" in source:
                continue
            plain += 1
            assert Texts(locale)(key) == _env().from_string(source).render().strip(), key
    assert plain > 100


def test_overrides_win_whether_plain_or_templated():
    texts = Texts("ru", overrides={"menu.back": "  Назад  ",
                                   "card.image_balance": "Есть {{ points(amount) }}"})
    assert texts("menu.back") == "Назад"
    assert texts("card.image_balance", amount=Decimal(5)) == "Есть 5 бонусов"
