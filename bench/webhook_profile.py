"""Where `kartochka serve` spends its CPU during a webhook.py phase: py-spy, summarised.

`Profiler(pid, out)` runs `py-spy record --format raw` (collapsed stacks, one line per
distinct stack with its sample count) on the server while the phase runs; `summary()`
reads it back and ranks functions by the share of samples they appear in (inclusive)
and of samples they are the leaf of (self). Only samples holding the GIL are kept
(`--gil`): the shares are shares of the server's Python CPU time (SQLite's own C work in
aiosqlite's thread, which releases the GIL, is not in them).
"""

from __future__ import annotations

import collections
import re
import subprocess
from pathlib import Path
from typing import Any

from pos_procs import stop

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
OURS = ("core/", "bots/", "app/", "merchant/")
# Buckets a reader can act on: the first frame of a stack matching each, outermost first wins.
STAGES = (
    ("webhook: store the update", ("bots/telegram/webhook.py",)),
    ("sender: send to the Bot API", ("bots/telegram/sender.py",)),
    ("dispatcher: claim, media, mark", ("core/services/dispatcher.py", "core/services/outgoing_claim.py")),
    ("update worker: store, claim, mark", ("core/services/updates.py", "core/services/group_commit.py")),
    ("card image (qrcode + pillow + zlib)", ("bots/dialog/card_image.py", "bots/dialog/png.py")),
    ("delivery: media + enqueue", ("bots/dialog/delivery.py",)),
    ("dialog: account, state, flow", ("bots/dialog/dialog.py", "bots/dialog/flows/")),
    ("aiogram: parse and route the update", ("aiogram/dispatcher/", "bots/telegram/processing.py")),
)


class Profiler:
    def __init__(self, py_spy: str, pid: int, out: Path, rate: int = 200) -> None:
        self.out = out
        self.proc = subprocess.Popen([py_spy, "record", "-p", str(pid), "--format", "raw", "-o", str(out),
                                      "--rate", str(rate), "--gil", "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self) -> dict[str, Any]:
        stop(self.proc)  # py-spy writes its file on SIGINT
        if not self.out.exists():
            return {}
        return summary(self.out)


def _frames(stack: str) -> list[tuple[str, str]]:
    found = []
    for frame in stack.split(";"):
        match = FRAME.match(frame.strip())
        if match is not None:
            found.append((match["func"], match["file"]))
    return found


def summary(path: Path, top: int = 25) -> dict[str, Any]:
    inclusive: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        names = {f"{func} ({file})" for func, file in frames}
        for name in names:
            inclusive[name] += count
        for name in {n for n in names if any(mark in n for mark in OURS) and not n.startswith("main (")}:
            ours[name] += count
        if frames:
            func, file = frames[-1]
            leaf[f"{func} ({file})"] += count
        stages[_stage(frames)] += count
    if not total:
        return {}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(n / total * 100, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "stages": share(stages), "ours_inclusive": share(ours),
            "inclusive": share(inclusive), "self": share(leaf)}


def _stage(frames: list[tuple[str, str]]) -> str:
    files = [file for _func, file in frames]
    for name, marks in STAGES:
        if any(mark in file for file in files for mark in marks):
            return name
    return "other (event loop, HTTP server, outbox, ...)"


def print_summary(name: str, found: dict[str, Any], lines: int = 12) -> None:
    if not found:
        print(f"{name}: no profile")
        return
    print(f"{name}: {found['samples']} samples of the server's CPU (py-spy)")
    print("  by stage (a stack counts for the first stage it passes through, in this order):")
    for stage, pct in found["stages"]:
        print(f"    {pct:5.1f}%  {stage}")
    print("  our functions, inclusive:")
    for func, pct in found["ours_inclusive"][:lines]:
        print(f"    {pct:5.1f}%  {func}")
    print("  self time (the leaf frame):")
    for func, pct in found["self"][:lines]:
        print(f"    {pct:5.1f}%  {func}")
