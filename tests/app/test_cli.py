"""The command line, through its real entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("KARTOCHKA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/k.db")
    monkeypatch.delenv("KARTOCHKA_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_merchant_and_key_creation(env, capsys):
    assert main(["merchant", "create", "--name", "Кофейня", "--slug", "corner"]) == 0
    assert main(["apikey", "create", "--merchant", "corner", "--scope", "till"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("kk_") and " " not in out[-1]
    assert (env / "k.db.secret").exists()


@pytest.mark.parametrize("argv, message", [
    (["apikey", "create", "--merchant", "nobody"], "no merchant 'nobody'"),
    (["merchant", "create", "--name", "X", "--slug", "api"], "reserved"),
    (["merchant", "create", "--name", "X", "--slug", "ok-slug", "--timezone", "Mars/Base"],
     "time zone"),
    (["program", "load", "--merchant", "nobody", "missing.yaml"], "missing.yaml"),
])
def test_errors_exit_non_zero_with_one_line(env, capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_program_load_and_jobs_run(env, capsys):
    main(["merchant", "create", "--name", "Shop", "--slug", "shop"])
    (env / "program.yaml").write_text(
        "lifetime_days: 90\ntiers:\n  - {id: base, name: Base, accrual_percent: 7}\n",
        encoding="utf-8")
    assert main(["program", "load", "--merchant", "shop", "program.yaml"]) == 0
    (env / "bad.yaml").write_text("tiers:\n  - {id: base, name: Base, accrual_percent: 700}\n")
    assert main(["program", "load", "--merchant", "shop", "bad.yaml"]) == 1
    assert "tiers.0.accrual_percent" in capsys.readouterr().err
    until = (datetime.now(UTC) + timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["jobs", "run", "--until", until]) == 0
    out = capsys.readouterr().out
    assert f"up to {until[:10]}" in out and int(out.split()[0]) >= 40  # daily sweeps, monthly review
    assert main(["jobs", "run", "--until", until]) == 0
    assert capsys.readouterr().out.startswith("0 jobs")


def test_db_check_agrees(env, capsys):
    assert main(["db", "check"]) == 0
    assert "agree" in capsys.readouterr().out


def test_the_consent_screen_names_the_legal_entity_and_policy_set_by_the_cli(env, capsys):
    import asyncio

    from app.container import build_core
    from bots.dialog.screens import Event
    from core.config import Settings

    assert main(["merchant", "create", "--name", "Кофейня", "--slug", "corner"]) == 0
    assert "--legal-name" in capsys.readouterr().out  # a reminder: the consent screen needs them
    assert main(["merchant", "update", "--merchant", "corner", "--legal-name", "ООО «Угол»",
                 "--privacy-url", "https://corner.example/privacy"]) == 0
    assert main(["merchant", "update", "--merchant", "corner", "--privacy-url", "ftp://x"]) == 1

    async def consent_screen() -> str:
        core = await build_core(Settings())
        try:
            async with core.ctx.db.read() as session:
                from sqlalchemy import select

                from core.db.models import Merchant
                merchant_id = await session.scalar(select(Merchant.id).where(Merchant.slug == "corner"))
            _account, reply = await core.messengers.dialog.handle(Event(
                channel="web", merchant_id=merchant_id, bot_id="web-corner", user_id="v1",
                chat_id="v1", kind="start"))
            return reply.screens[-1].text
        finally:
            await core.close()

    text = asyncio.run(consent_screen())
    assert "ООО «Угол»" in text and "https://corner.example/privacy" in text


def test_a_merchant_secret_is_read_from_stdin_and_stored_encrypted(env, capsys, monkeypatch):
    import io

    main(["merchant", "create", "--name", "Кофейня", "--slug", "corner"])
    monkeypatch.setattr("sys.stdin", io.StringIO("sms-ru-api-id-7f3a\n"))
    assert main(["secret", "set", "--merchant", "corner", "sms.ru:api_id"]) == 0
    assert "sms-ru-api-id-7f3a" not in capsys.readouterr().out
    assert b"sms-ru-api-id-7f3a" not in (env / "k.db").read_bytes()  # encrypted at rest
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["secret", "set", "--merchant", "corner", "sms.ru:api_id"]) == 1
