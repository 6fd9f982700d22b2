"""What the rules engine's mechanics cost: the most complex seed program against the default.

Two measurements, each as a ratio to the same run with the default program:
1. the pure engine (core.domain.engine.evaluate), evaluations per second in one process;
2. through the REST API: a `kartochka serve` on SQLite in a subprocess, one merchant per
   program, sales per second from a client process with a bounded concurrency.

    python bench/rules.py [--program tests/programs/p16-polycard/program.yaml] [--seconds 3]
        [--sales 600] [--concurrency 16]

Never a timed test: run it by hand; it stops by itself and prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.domain.engine import SaleLine, evaluate  # noqa: E402
from core.domain.facts import SaleFacts  # noqa: E402
from core.domain.program import Program, default_program, parse_program  # noqa: E402

CATEGORIES = ["coffee", "bakery", "wine", "cheese", "services", "goods"]


def sample_lines(i: int) -> list[SaleLine]:
    """A receipt of 3-6 lines across categories, different for each i."""
    lines = []
    for n in range(3 + i % 4):
        price = 5000 + (i * 37 + n * 911) % 90000
        qty = 1 + (i + n) % 3
        cat = CATEGORIES[(i + n) % len(CATEGORIES)]
        lines.append(SaleLine(f"{n}", price * qty, f"SKU{n}", cat, price, Decimal(qty)))
    return lines


def engine_rate(program: Program, seconds: float) -> float:
    tz = ZoneInfo("Europe/Moscow")
    receipts = [sample_lines(i) for i in range(200)]
    facts = [SaleFacts(local_time=datetime(2026, 3, 1 + i % 28, 8 + i % 12, tzinfo=tz),
                       has_customer=True, available_cp=10**6, birth_date=date(1990, 3, 5),
                       purchase_count=1 + i % 9, last_purchase_at=datetime(2026, 2, 25, tzinfo=tz),
                       last_month_spend_minor=(i % 3) * 1_000_000, nth_counts={})
             for i in range(200)]
    tier = program.tiers[-1]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for lines, fact in zip(receipts, facts, strict=True):
            total = sum(x.amount_minor for x in lines)
            evaluate(program, tier, lines, total, 0, fact)
        done += len(receipts)
    return done / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


async def api_rate(port: int, key: str, sales: int, concurrency: int, tag: str) -> float:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}/api/v1"
    async with aiohttp.ClientSession(headers=headers) as http:
        for c in range(50):
            async with http.post(f"{base}/customers", json={"phone": f"+7916{c:07d}"}) as r:
                assert r.status in (200, 201), await r.text()
        queue = list(range(sales))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                lines = [{"line_id": x.line_id, "sku": x.sku, "category": x.category,
                          "price": str(Decimal(x.price_minor or 0) / 100),
                          "quantity": str(x.quantity)} for x in sample_lines(i)]
                total = sum(Decimal(x["price"]) * Decimal(x["quantity"]) for x in lines)
                body = {"receipt_id": f"{tag}-{i}", "customer": {"phone": f"+7916{i % 50:07d}"},
                        "total": str(total), "lines": lines}
                async with http.post(f"{base}/purchases", json=body) as r:
                    assert r.status == 201, await r.text()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return sales / (time.perf_counter() - start)


def start_server(complex_doc: dict[str, Any]) -> tuple[subprocess.Popen[bytes], int, dict[str, str], Path]:
    """A `kartochka serve` on a fresh SQLite file with two merchants: default and complex."""
    work = Path(tempfile.mkdtemp(prefix="kartochka-rules-"))
    port = _free_port()
    env = {**os.environ, "KARTOCHKA_DATABASE_URL": f"sqlite+aiosqlite:///{work}/k.db",
           "KARTOCHKA_PORT": str(port), "KARTOCHKA_LOG_LEVEL": "WARNING"}
    env.pop("KARTOCHKA_SECRET_KEY", None)
    (work / "complex.yaml").write_text(yaml.safe_dump(complex_doc, allow_unicode=True))
    keys = {}
    for slug in ("plain", "rich"):
        _cli(env, "merchant", "create", "--name", slug, "--slug", slug)
        keys[slug] = _cli(env, "apikey", "create", "--merchant", slug, "--scope", "admin")
    _cli(env, "program", "load", "--merchant", "rich", str(work / "complex.yaml"))
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, port, keys, work


def through_api(complex_doc: dict[str, Any], sales: int, concurrency: int) -> dict[str, float]:
    server, port, keys, work = start_server(complex_doc)
    try:
        return {slug: asyncio.run(api_rate(port, keys[slug], sales, concurrency, slug))
                for slug in ("plain", "rich")}
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", default=str(ROOT / "tests/programs/p16-polycard/program.yaml"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sales", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    document = yaml.safe_load(Path(args.program).read_text(encoding="utf-8"))
    rich = parse_program(document)
    plain = default_program()
    engine = {"plain": engine_rate(plain, args.seconds), "rich": engine_rate(rich, args.seconds)}
    api = through_api(document, args.sales, args.concurrency)
    print(f"program: {args.program} ({len(rich.mechanics)} mechanics, {len(rich.tiers)} tiers)")
    print(f"{'':24}{'default':>12}{'complex':>12}{'ratio':>8}")
    print(f"{'engine, evaluations/s':24}{engine['plain']:>12.0f}{engine['rich']:>12.0f}"
          f"{engine['rich'] / engine['plain']:>8.2f}")
    print(f"{'API on SQLite, sales/s':24}{api['plain']:>12.1f}{api['rich']:>12.1f}"
          f"{api['rich'] / api['plain']:>8.2f}")
    print(json.dumps({"engine": engine, "api": api}))


if __name__ == "__main__":
    main()
