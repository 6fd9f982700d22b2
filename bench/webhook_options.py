"""The command line of webhook.py."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pos_load import HERE

DESCRIPTION = '"Show my card" through the whole Telegram stack against a bare aiogram bot'
TARGETS = ("product-sqlite", "product-pg", "peer-aiogram", "limited-pg", "limited-sqlite")
DEFAULT_TARGETS = "product-sqlite,product-pg,peer-aiogram,limited-pg"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--targets", default=DEFAULT_TARGETS,
                        help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--customers", type=int, default=1000, help="customers (and chats) per target")
    parser.add_argument("--updates", type=int, default=1000, help="presses in the closed loop")
    parser.add_argument("--concurrency", type=int, default=32, help="presses at a time in the closed loop")
    parser.add_argument("--warmup", type=int, default=300, help="presses before measuring")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="presses a second in the open loop (0: none)")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--limit-rate", type=float, default=45.0, help="presses a second, limited run")
    parser.add_argument("--limit-seconds", type=float, default=10.0)
    parser.add_argument("--hot-chats", type=int, default=5, help="chats pressed many times at once (limited)")
    parser.add_argument("--hot-presses", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=450,
                        help="messages queued before the limited run's serve starts (--hot-presses more"
                             " to each hot chat)")
    parser.add_argument("--limit-tolerance", type=float, default=0.25,
                        help="seconds of timing slack in the limit check")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds idle before reading RSS")
    parser.add_argument("--quiet-below", type=float, default=20.0,
                        help="before each target, wait until other work keeps the CPU under this %%")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="... for at most these seconds")
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="an existing database to connect to; bench databases are created beside it and dropped")
    parser.add_argument("--python", default=sys.executable, help="the virtualenv's python")
    parser.add_argument("--product-src", type=Path, help="run the product from this source tree")
    parser.add_argument("--profile", action="store_true",
                        help="one more closed loop per product target under py-spy, summarised")
    parser.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"))
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the targets this many times, in the reverse order every other "
                             "round (a machine whose speed drifts shows in the spread); ratios per "
                             "round and their median")
    args = parser.parse_args(argv)
    args.names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(args.names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.customers <= max(args.concurrency, args.hot_chats):
        parser.error("--customers must exceed --concurrency and --hot-chats")
    return args
