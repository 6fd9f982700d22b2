"""Processes for webhook.py: the fake Bot API's process and its control routes, CPU with the fake,
what the product's tables hold at the end. The rest comes from pos_procs (RSS, quiet machine, ...)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pos_procs import CpuSnapshot, dsn_for, pg_admin, proc_cpu_seconds

HERE = Path(__file__).resolve().parent
PUBLIC_URL = "https://bench.invalid"  # what serve tells the fake (it wants HTTPS); we POST locally


# ---------------------------------------------------------------- the fake Bot API


def start_fake(python: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The fake in its own process; returns it and its base URL."""
    with log.open("wb") as err:
        proc = subprocess.Popen([python, str(HERE / "webhook_fake.py")], stdout=subprocess.PIPE,
                                stderr=err)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"the fake Bot API did not start: {line!r}; see {log}")
    return proc, line


def fake_call(base: str, path: str, method: str = "GET", **params: Any) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as response:
        return json.loads(response.read())


def new_bot(base: str, username: str) -> str:
    """A bot the fake knows; its token (`<telegram id>:<secret>`)."""
    return str(fake_call(base, "/_bench/bots", "POST", username=username)["token"])


def telegram_id(token: str) -> int:
    return int(token.split(":", 1)[0])


def wait_webhook(base: str, token: str, contains: str, timeout: float = 60.0) -> dict[str, Any]:
    """What the bot's setWebhook said, once its URL contains `contains`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hook: dict[str, Any] = fake_call(base, "/_bench/webhook", token=token)
        if contains in str(hook.get("url", "")) and hook.get("secret_token"):
            return hook
        time.sleep(0.2)
    raise RuntimeError(f"no webhook with {contains!r} was set within {timeout:.0f} s")


def sends_of(base: str, bot: int, since: float = 0.0) -> list[tuple[float, int, str]]:
    """Messages the bot sent since monotonic `since`: (time, chat, method)."""
    log = fake_call(base, "/_bench/log", since=since)
    return [(float(t), int(chat), str(method)) for t, b, chat, method in log["sends"] if b == bot]


def fake_methods(base: str) -> dict[str, int]:
    """How many calls of each Bot API method the fake has answered so far (every bot)."""
    methods: dict[str, int] = fake_call(base, "/_bench/log", since=float("inf"))["methods"]
    return methods


def settle_sends(base: str, bot: int, quiet: float = 2.0, patience: float = 120.0) -> int:
    """Wait until the bot sends nothing for `quiet` s (notifications of the set-up); how many it sent."""
    deadline = time.monotonic() + patience
    count, still_since = len(sends_of(base, bot)), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = len(sends_of(base, bot))
        if now != count:
            count, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return count


# ---------------------------------------------------------------- CPU, with the fake


@dataclass(frozen=True)
class Snapshot:
    cpu: CpuSnapshot
    fake: float

    @classmethod
    def take(cls, server_pid: int, fake_pid: int) -> Snapshot:
        return cls(CpuSnapshot.take(server_pid), proc_cpu_seconds(fake_pid))

    def cores_since(self, before: Snapshot) -> dict[str, float]:
        """Cores used on average: server, postgres, fake, load generator, other, machine."""
        cores = self.cpu.cores_since(before.cpu)
        wall = max(self.cpu.at - before.cpu.at, 1e-9)
        fake = (self.fake - before.fake) / wall
        return {"server": cores["server"], "postgres": cores["postgres"], "fake": round(fake, 2),
                "load": cores["load"], "other": round(max(cores["other"] - fake, 0.0), 2),
                "machine": cores["machine"]}


# ---------------------------------------------------------------- targets and results


@dataclass
class Target:
    name: str
    kind: str  # "product" or "peer"
    command: list[str]
    env: dict[str, str]
    cwd: Path
    base: str
    health: str
    token: str
    webhook_path_contains: str
    limited: bool = False
    database: str | None = None
    sqlite_path: Path | None = None
    setup_seconds: float | None = None


@dataclass
class Measured:
    name: str
    background_busy_percent: float = 0.0
    setup_seconds: float | None = None
    sends_before_load: int = 0
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    closed: dict[str, Any] = field(default_factory=dict)
    fixed_rate: dict[str, Any] = field(default_factory=dict)
    limit: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    table_activity: dict[str, dict[str, float]] = field(default_factory=dict)
    server_log_lines: int = 0


STATUS_SQL = {"inbound_updates": "SELECT status, COUNT(*) FROM inbound_updates GROUP BY status",
              "outgoing_messages": "SELECT status, COUNT(*) FROM outgoing_messages GROUP BY status"}


async def _pg_statuses(dsn: str) -> dict[str, dict[str, int]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return {table: {r[0]: int(r[1]) for r in await conn.fetch(sql)} for table, sql in STATUS_SQL.items()}
    finally:
        await conn.close()


def table_statuses(target: Target, admin_dsn: str) -> dict[str, dict[str, int]]:
    """Stored updates and outgoing rows by status at the end (product only; a diagnostic)."""
    try:
        if target.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(f"file:{target.sqlite_path}?mode=ro", uri=True,
                                                    timeout=10)) as conn:
                return {table: {s: int(n) for s, n in conn.execute(sql)} for table, sql in STATUS_SQL.items()}
        if target.database is not None:
            import asyncio

            return asyncio.run(_pg_statuses(dsn_for(admin_dsn, target.database)))
    except Exception as exc:  # never fail the run for a diagnostic
        print(f"  (table statuses unknown: {exc})", file=sys.stderr)
    return {}


def pg_xacts(admin_dsn: str, database: str) -> int:
    """Transactions ever committed or rolled back in `database` (a backend reports within ~1 s)."""
    try:
        return int(pg_admin(admin_dsn, "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                                       f" WHERE datname = '{database}'", fetch=True) or 0)
    except Exception:  # a diagnostic only
        return 0


Activity = dict[str, tuple[int, int, int, int]]
ACTIVITY_SQL = ("SELECT relname, COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0), n_tup_ins, n_tup_upd,"
                " n_tup_del FROM pg_stat_user_tables")


async def _pg_activity(dsn: str) -> Activity:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in await conn.fetch(ACTIVITY_SQL)}
    finally:
        await conn.close()


def pg_activity(admin_dsn: str, database: str) -> Activity:
    """Per table: (scans, rows inserted, rows updated, rows deleted) so far (empty when unknown)."""
    import asyncio

    try:
        return asyncio.run(_pg_activity(dsn_for(admin_dsn, database)))
    except Exception as exc:  # a diagnostic only
        print(f"  (table activity unknown: {exc})", file=sys.stderr)
        return {}


def activity_per_press(before: Activity, after: Activity, presses: int) -> dict[str, dict[str, float]]:
    """What the presses did to each table, per press (tables they did not touch left out)."""
    found: dict[str, dict[str, float]] = {}
    for table, now in after.items():
        delta = [n - b for n, b in zip(now, before.get(table, (0, 0, 0, 0)), strict=True)]
        if any(delta) and presses:
            found[table] = {k: round(v / presses, 2) for k, v in zip(("scans", "inserted", "updated",
                                                                    "deleted"), delta, strict=True)}
    return dict(sorted(found.items(), key=lambda item: -sum(item[1].values())))
