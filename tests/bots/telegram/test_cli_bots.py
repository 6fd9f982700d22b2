"""`kartochka bot add|list|remove` through the real CLI entry point, against the fake Bot API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.cli import main
from tests.fakes.telegram import FakeTelegram


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:  # the CLI runs its own event loop: the fake gets a thread
    server = FakeTelegram()
    with server.in_thread():
        yield server


@pytest.fixture
def env(monkeypatch, tmp_path, fake):
    monkeypatch.setenv("KARTOCHKA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/k.db")
    monkeypatch.setenv("KARTOCHKA_TELEGRAM_API_URL", fake.url)
    monkeypatch.delenv("KARTOCHKA_SECRET_KEY", raising=False)
    monkeypatch.delenv("KARTOCHKA_PUBLIC_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["merchant", "create", "--name", "Кофейня", "--slug", "coffee"]) == 0
    return tmp_path


def test_add_list_remove(env, fake, capsys, monkeypatch):
    monkeypatch.setenv("KARTOCHKA_PUBLIC_URL", "https://loyalty.example/")
    token = fake.add_bot(username="coffee_club_bot", first_name="Кофейня")
    capsys.readouterr()
    assert main(["bot", "add", "--merchant", "coffee", "--channel", "telegram", "--token", token]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    bot_id = out[-1]
    assert bot_id.startswith("bot_") and " " not in bot_id
    assert "@coffee_club_bot" in out[0]
    assert any("mini-app" in line and "not set" in line for line in out)
    hook = fake.bots[token].webhook
    assert hook["url"] == f"https://loyalty.example/webhooks/telegram/{bot_id}"
    assert len(hook["secret_token"]) >= 32 and "callback_query" in hook["allowed_updates"]
    commands = fake.bots[token].commands
    assert commands[""] == [{"command": "start", "description": "Открыть меню"}]
    assert commands["en"] == [{"command": "start", "description": "Open the menu"}]
    assert token not in (env / "k.db").read_bytes().decode("latin-1")  # stored encrypted

    assert main(["bot", "list", "--merchant", "coffee"]) == 0
    listed = capsys.readouterr().out
    assert bot_id in listed and "telegram" in listed and "@coffee_club_bot" in listed

    # adding the same bot again keeps its id (a new token after /revoke in BotFather, say)
    assert main(["bot", "add", "--merchant", "coffee", "--channel", "telegram", "--token", token]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == bot_id

    assert main(["bot", "remove", "--merchant", "coffee", bot_id]) == 0
    assert f"bot {bot_id} removed" in capsys.readouterr().out
    assert fake.bots[token].webhook is None
    assert main(["bot", "list", "--merchant", "coffee"]) == 0
    assert capsys.readouterr().out.strip() == "0 bots"
    assert main(["bot", "remove", "--merchant", "coffee", bot_id]) == 1


def test_without_public_url_no_webhook_is_set(env, fake, capsys):
    token = fake.add_bot()
    assert main(["bot", "add", "--merchant", "coffee", "--channel", "telegram", "--token", token]) == 0
    out = capsys.readouterr().out
    assert "long polling" in out and not fake.calls_of("setWebhook")


@pytest.mark.parametrize("token, message", [
    ("123456:not-a-token-telegram-knows", "Telegram refused this token"),
    ("nonsense", "not a Telegram bot token"),
])
def test_a_refused_token_is_an_error(env, fake, capsys, token, message):
    assert main(["bot", "add", "--merchant", "coffee", "--channel", "telegram", "--token", token]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert main(["bot", "list", "--merchant", "coffee"]) == 0
    assert capsys.readouterr().out.strip() == "0 bots"


def test_one_bot_one_merchant(env, fake, capsys):
    assert main(["merchant", "create", "--name", "Другая", "--slug", "other"]) == 0
    token = fake.add_bot()
    assert main(["bot", "add", "--merchant", "coffee", "--channel", "telegram", "--token", token]) == 0
    assert main(["bot", "add", "--merchant", "other", "--channel", "telegram", "--token", token]) == 1
    assert "already connected to another merchant" in capsys.readouterr().err
