"""`kartochka import customers`, through the real entry point and a SQLite file."""

from __future__ import annotations

import pytest

from app.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("KARTOCHKA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/k.db")
    monkeypatch.delenv("KARTOCHKA_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["merchant", "create", "--name", "Кофейня", "--slug", "shop"]) == 0
    return tmp_path


def import_args(*extra: str) -> list[str]:
    return ["import", "customers", "--merchant", "shop", *extra]


def test_dry_run_then_import_then_again(env, capsys):
    (env / "base.csv").write_bytes(
        ("phone;name;balance;balance_expires_at\r\n"
         "89161234567;Иванова Мария;150,50;31.12.2099\r\n"
         "89167654321;Сергей;;\r\n").encode("cp1251"))
    capsys.readouterr()

    assert main(import_args("base.csv", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "dry run of base.csv" in out
    assert "2 created, 0 updated, 0 unchanged, 1 opening balances credited" in out
    assert "nothing was written" in out

    assert main(import_args("base.csv")) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported base.csv for shop: 2 rows; 2 created")

    assert main(import_args("base.csv")) == 0
    assert "0 created, 0 updated, 2 unchanged, 0 opening balances credited" in capsys.readouterr().out


def test_bad_rows_are_listed_by_line_and_exit_one(env, capsys):
    (env / "bad.csv").write_text(
        "phone,name,birth_date,gender\n"
        "+79161234567,Anna,1990-05-17,f\n"
        "12345,Bad,,\n"
        "+79161234568,Boris,30.02.1990,x\n",
        encoding="utf-8")
    capsys.readouterr()
    for extra in (["--dry-run"], []):
        assert main(import_args("bad.csv", *extra)) == 1
        captured = capsys.readouterr()
        lines = captured.out.splitlines()
        assert [line.split(":")[:2] for line in lines] == [
            ["line 3", " phone"], ["line 4", " birth_date"], ["line 4", " gender"]]
        assert captured.err.startswith("error: bad.csv: 3 errors on 2 lines; nothing was imported")
        assert captured.err.count("\n") == 1
    # Nothing went in: the good row still creates its customer once the file is fixed.
    (env / "bad.csv").write_text("phone,name\n+79161234567,Anna\n", encoding="utf-8")
    assert main(import_args("bad.csv")) == 0
    assert "1 created" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["import", "customers", "--merchant", "nobody", "base.csv"], "no merchant 'nobody'"),
    (["import", "customers", "--merchant", "shop", "missing.csv"], "cannot read missing.csv"),
])
def test_errors_exit_non_zero_with_one_line(env, capsys, argv, message):
    (env / "base.csv").write_text("phone\n+79161234567\n", encoding="utf-8")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
