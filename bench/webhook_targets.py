"""The targets of webhook.py, set up: the product (database, merchant, bot, customers) and the peer."""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

from pos_load import HERE
from pos_procs import clean_env, dsn_for, free_port, pg_admin, run_cli
from webhook_procs import PUBLIC_URL, Target, new_bot


def product_target(args: argparse.Namespace, name: str, cwd: Path, fake_url: str, tag: str,
                   databases: list[str]) -> Target:
    """A fresh database with the merchant, its bot (`kartochka bot add`) and the customers."""
    database, sqlite_path = None, None
    if name.endswith("-pg"):
        database = f"bench_hook_{name.split('-')[0]}_{tag}"
        pg_admin(args.pg_dsn, f'CREATE DATABASE "{database}"')
        databases.append(database)
        url = dsn_for(args.pg_dsn, database).replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        sqlite_path = cwd / "kartochka.db"
        url = f"sqlite+aiosqlite:///{sqlite_path}"
    limited = name.startswith("limited")
    env = clean_env({
        "KARTOCHKA_DATABASE_URL": url, "KARTOCHKA_SECRET_KEY": secrets.token_urlsafe(32),
        "KARTOCHKA_LOG_LEVEL": "WARNING", "KARTOCHKA_PUBLIC_URL": PUBLIC_URL,
        "KARTOCHKA_TELEGRAM_API_URL": fake_url,
        "KARTOCHKA_SEND_RATE_LIMIT": "true" if limited else "false",
    })
    if args.product_src is not None:
        env["PYTHONPATH"] = str(args.product_src.resolve())
    kartochka = str(Path(args.python).parent / "kartochka")
    token = new_bot(fake_url, f"bench_{name.replace('-', '_')}_bot")
    run_cli([kartochka, "merchant", "create", "--name", "Кофейня Бенч", "--slug", "bench"], env, cwd)
    out = run_cli([kartochka, "bot", "add", "--merchant", "bench", "--channel", "telegram",
                   "--token", token], env, cwd)
    bot_id = out.strip().splitlines()[-1]
    started = time.monotonic()
    backlog = (["--backlog", str(args.backlog), "--hot-chats", str(args.hot_chats),
                "--hot-messages", str(args.hot_presses)] if limited else [])
    print(run_cli([args.python, str(HERE / "webhook.py"), "_setup", "--merchant", "bench",
                   "--bot-id", bot_id, "--customers", str(args.customers), *backlog], env, cwd).strip(),
          flush=True)
    port = free_port()
    target = Target(name, "product", [kartochka, "serve", "--port", str(port)], env, cwd,
                    f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/healthz", token,
                    f"/webhooks/telegram/{bot_id}", limited, database, sqlite_path)
    target.setup_seconds = round(time.monotonic() - started, 1)
    return target


def peer_target(args: argparse.Namespace, name: str, cwd: Path, fake_url: str) -> Target:
    """The bare aiogram bot, sending a card PNG the product rendered (the same bytes on the wire)."""
    from bots.dialog.card_image import render_card

    photo = cwd / "card.png"
    photo.write_bytes(render_card("2000 1234 5678", merchant="Кофейня Бенч", balance="Баланс: 0 бонусов",
                                  tier="Уровень: Базовый", caption="Карта"))
    token = new_bot(fake_url, "bench_peer_bot")
    port = free_port()
    command = [args.python, str(HERE / "webhook_peer.py"), "--api-url", fake_url, "--token", token,
               "--port", str(port), "--secret", secrets.token_hex(16), "--photo", str(photo),
               "--public-url", PUBLIC_URL]
    return Target(name, "peer", command, clean_env({}), cwd, f"http://127.0.0.1:{port}",
                  f"http://127.0.0.1:{port}/health", token, "/webhook")
