"""Promotions in Telegram for every seed program: the text a customer reads is the snapshot.

The merchant loads a seed program through PUT /api/v1/program, a customer registered
through the bot presses Promotions, and the message the fake Bot API received is the
program in words, exactly as tests/programs/<folder>/describe.ru.txt has it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bots.dialog.texts import Texts
from core.config import Settings
from tests.bots.telegram.chat import Chat
from tests.bots.telegram.test_journeys import register
from tests.merchant.apicheck import call
from tests.programs.harness import ROOT

RU = Texts("ru")


def programs() -> list[Path]:
    """Seed program folders with a program document and a Russian snapshot of its text."""
    return sorted(p for p in ROOT.iterdir()
                  if (p / "program.yaml").exists() and (p / "describe.ru.txt").exists())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No per-chat send limit (1 message/s): the sender's pacing is tested in test_sender."""
    return settings.model_copy(update={"send_rate_limit": False})


def test_every_seed_program_has_a_snapshot():
    assert len(programs()) >= 30, [p.name for p in programs()]


@pytest.mark.parametrize("folder", programs(), ids=lambda p: p.name)
async def test_promotions_show_the_program_in_words(telegram, anna, auth, folder):
    document = yaml.safe_load((folder / "program.yaml").read_text(encoding="utf-8"))
    status, body = await call(telegram.client, "PUT", "/api/v1/program", json=document, headers=auth)
    assert status == 200, body
    chat = Chat(telegram, anna)
    await register(chat, "+79161234567")

    arrived = await chat.press("promo")

    [screen] = arrived
    assert screen.method == "sendMessage"
    # The snapshot is the whole message: no header or footer; the dialog's texts are
    # stripped, so only the file's final newline is not in it.
    snapshot = (folder / "describe.ru.txt").read_text(encoding="utf-8")
    assert screen.params["text"] == snapshot.removesuffix("\n")
    assert screen.markup == {"inline_keyboard": [[{"text": RU("menu.back"), "callback_data": "menu"}]]}
