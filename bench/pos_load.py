"""The load generator of pos_api.py (its own process: `pos_api.py _load ...`) and the figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = ("product-sqlite", "product-pg", "peer-pg")
TOTALS = ("1250.00", "349.90", "2100.50", "487.00")  # each accrues more than a 10-point redemption
REDEEM = "10"
KEY_ENV = "BENCH_POS_API_KEY"
PHASE_TIMEOUT = 600.0
REQUEST_TIMEOUT = 30.0
MB = 1024.0
FAILURES_KEPT = 5


# ---------------------------------------------------------------- figures


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies: list[float], statuses: Counter[int], elapsed: float) -> dict[str, Any]:
    """Latencies in ms of the successful (2xx) requests; throughput counts successes only."""
    ordered = sorted(latencies)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "elapsed_s": round(elapsed, 3),
        "per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p90_ms": round(percentile(ordered, 90) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 2) if ordered else 0.0,
    }


# ---------------------------------------------------------------- load generator (own process)


def phones(count: int) -> list[str]:
    return [f"+7916{1_000_000 + i:07d}" for i in range(count)]


def sale_body(tag: str, i: int, phone: str, rng: random.Random, redeem_every: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "receipt_id": f"{tag}-{i:07d}",
        "customer": {"phone": phone},
        "total": rng.choice(TOTALS),
        "store_id": f"store-{i % 4}",
        "cashier_id": f"till-{i % 8}",
    }
    if redeem_every and rng.randrange(redeem_every) == 0:
        body["redeem"] = REDEEM
    return body


@dataclass
class Recorder:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    async def post(self, session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                   started: float) -> None:
        """POST `body`; the latency counts from `started` (when the request was due)."""
        try:
            async with session.post(url, json=body) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, repr(exc).encode()
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.latencies.append(time.perf_counter() - started)
        elif len(self.failures) < FAILURES_KEPT:
            self.failures.append(f"{status} {answer[:300].decode(errors='replace')}")

    def summary(self, elapsed: float) -> dict[str, Any]:
        return {**latency_summary(self.latencies, self.statuses, elapsed), "failures": self.failures}


def client_session(key: str, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        headers={"Authorization": f"Bearer {key}"},
    )


async def closed_loop(url: str, key: str, bodies: Callable[[int], dict[str, Any]], count: int,
                      concurrency: int) -> dict[str, Any]:
    """`count` requests through `concurrency` workers, each sending its next as soon as answered."""
    recorder = Recorder()
    issued = iter(range(count))
    async with client_session(key, concurrency) as session:

        async def worker() -> None:
            for i in issued:
                await recorder.post(session, url, bodies(i), time.perf_counter())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return recorder.summary(elapsed)


async def open_loop(url: str, key: str, bodies: Callable[[int], dict[str, Any]], rate: float,
                    seconds: float, connections: int) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, sent on schedule whatever the answers do."""
    recorder = Recorder()
    count = max(1, int(rate * seconds))
    async with client_session(key, connections) as session:
        started = time.perf_counter() + 0.05
        tasks = []
        for i in range(count):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(recorder.post(session, url, bodies(i), due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    result = recorder.summary(elapsed)
    result["target_per_second"] = rate
    return result


async def load(args: argparse.Namespace) -> dict[str, Any]:
    key = os.environ[KEY_ENV]
    numbers = phones(args.customers)
    rng = random.Random(args.tag)
    if args.mode == "register":
        return await closed_loop(f"{args.base}/customers", key, lambda i: {"phone": numbers[i]},
                                 len(numbers), args.concurrency)

    def bodies(i: int) -> dict[str, Any]:
        return sale_body(args.tag, i, numbers[i % len(numbers)], rng, args.redeem_every)

    if args.mode == "closed":
        return await closed_loop(f"{args.base}/purchases", key, bodies, args.count, args.concurrency)
    return await open_loop(f"{args.base}/purchases", key, bodies, args.rate, args.seconds,
                           args.concurrency)


def load_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pos_api.py _load")
    parser.add_argument("--mode", choices=("register", "closed", "open"), required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redeem-every", type=int, default=0)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(load(args))
    args.out.write_text(json.dumps(result))
    return 0


