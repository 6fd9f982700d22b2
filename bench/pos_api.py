"""Purchases over HTTP: throughput, latency and memory of `kartochka serve` against a bare peer.

One run measures, one target after another, on this machine:

* ``product-sqlite`` — ``kartochka serve`` on a fresh SQLite file;
* ``product-pg``     — ``kartochka serve`` on a fresh PostgreSQL database;
* ``peer-pg``        — ``bench/peer_pos.py``, a bare aiohttp + asyncpg handler doing the
  same writes on its own fresh PostgreSQL database;
* ``bare``           — a process that only imports the product's libraries (RSS baseline).

For each server: start it, wait for its health path, read its RSS idle, register
the customers, give each one warm-up sale, then

1. a closed loop: ``--requests`` sales through ``--concurrency`` keep-alive connections,
   as fast as they are answered (purchases/s, p50, p99);
2. an open loop: ``--rate`` sales a second for ``--rate-seconds``, each latency counted
   from the moment the request was due, so a server that falls behind shows it (p50, p99);

while the driver samples the server's VmRSS (peak under load) and CPU time. The load
generator is a separate process (``pos_api.py _load``), so its CPU is not the server's.
Every run stops by itself: fixed counts, per-request timeouts, a timeout per phase.

    /work/venv/bin/python bench/pos_api.py                       # everything, a few minutes
    /work/venv/bin/python bench/pos_api.py --targets product-pg,peer-pg --requests 5000

Results: one table on stdout and bench/results/pos_api-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = ("product-sqlite", "product-pg", "peer-pg")
BARE_IMPORTS = ("aiohttp", "sqlalchemy", "sqlalchemy.ext.asyncio", "asyncpg", "aiosqlite", "pydantic",
                "pydantic_settings", "cryptography", "prometheus_client", "alembic", "phonenumbers",
                "argon2", "yaml")
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


# ---------------------------------------------------------------- processes


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (empty once it is gone)."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) / MB
    return found


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def postgres_cpu_seconds() -> float:
    """CPU time of PostgreSQL on this machine: live processes, and the backends that have exited.

    The postmaster reaps its backends, so their CPU time lands in its cutime/cstime: a pool
    that opens and closes connections is counted too.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] == "postgres":
                fields = text.rsplit(")", 1)[1].split()
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: the server, PostgreSQL, our reaped children (the load generator), all."""

    at: float
    server: float
    postgres: float
    children: float
    machine_busy: float

    @classmethod
    def take(cls, pid: int) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, _ = machine_ticks()
        return cls(time.monotonic(), proc_cpu_seconds(pid), postgres_cpu_seconds(),
                   usage.ru_utime + usage.ru_stime, busy / os.sysconf("SC_CLK_TCK"))

    def cores_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Cores used on average between two snapshots; `other` is everything else on the machine."""
        wall = max(self.at - before.at, 1e-9)
        server = (self.server - before.server) / wall
        postgres = (self.postgres - before.postgres) / wall
        load = (self.children - before.children) / wall
        busy = (self.machine_busy - before.machine_busy) / wall
        return {"server": round(server, 2), "postgres": round(postgres, 2), "load": round(load, 2),
                "other": round(max(busy - server - postgres - load, 0.0), 2), "machine": round(busy, 2)}


def machine_busy(seconds: float) -> float:
    """Percent of the machine's CPU busy over the next `seconds`."""
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return round((busy1 - busy0) / max(total1 - total0, 1) * 100, 1)


def wait_quiet(below: float, patience: float) -> float:
    """Wait (at most `patience` s) until other work leaves the CPU under `below` percent busy."""
    deadline = time.monotonic() + patience
    busy = machine_busy(1.0)
    while busy >= below and time.monotonic() < deadline:
        busy = machine_busy(1.0)
    if busy >= below:
        print(f"  warning: the machine is {busy:.0f}% busy with other work; figures will be low",
              flush=True)
    return busy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KARTOCHKA_", "BENCH_"))}
    env.update(extra)
    return env


def run_cli(command: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown), then SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError, urllib.error.URLError), \
                urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


async def _pg_admin(dsn: str, statements: list[str], fetch: bool) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if fetch:
            return await conn.fetchval(statements[0])
        for statement in statements:
            await conn.execute(statement)
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


def pg_admin(dsn: str, *statements: str, fetch: bool = False) -> Any:
    """Run statements (and answer the server version), or fetch the one value of one query."""
    return asyncio.run(_pg_admin(dsn, list(statements), fetch))


def pg_sessions(admin_dsn: str, database: str) -> int:
    """Sessions ever opened to `database` (PostgreSQL 14+; 0 when unknown)."""
    try:
        found = pg_admin(admin_dsn, "SELECT sessions FROM pg_stat_database"
                                    f" WHERE datname = '{database}'", fetch=True)
    except Exception:  # an older server: a diagnostic only
        return 0
    return int(found or 0)


BACKLOG_SQL = ("SELECT (SELECT COALESCE(MAX(id), 0) FROM outbox_events)"
               " - (SELECT COALESCE(MIN(last_event_id), 0) FROM outbox_offsets)")


def outbox_backlog(server: Server, admin_dsn: str) -> int | None:
    """Events the product wrote that its outbox drain has not handed on yet (None: unknown)."""
    try:
        if server.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(f"file:{server.sqlite_path}?mode=ro", uri=True,
                                                    timeout=10)) as conn:
                return int(conn.execute(BACKLOG_SQL).fetchone()[0])
        if server.database is not None and server.name.startswith("product"):
            return int(pg_admin(dsn_for(admin_dsn, server.database), BACKLOG_SQL, fetch=True))
    except Exception as exc:  # a diagnostic: never fail the run for it
        print(f"  (outbox backlog unknown: {exc})", file=sys.stderr)
    return None


def dsn_for(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + database


def bare_process(python: str, settle: float) -> dict[str, float]:
    """RSS of a process that imports the product's libraries and sleeps."""
    code = ("import time\n" + "".join(f"import {name}\n" for name in BARE_IMPORTS)
            + "print('ready', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bare process did not start")
        time.sleep(settle)
        return proc_memory(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- one target


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    base: str
    health: str
    database: str | None = None
    sqlite_path: Path | None = None


@dataclass
class Measured:
    name: str
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_warmup_mb: float = 0.0
    rss_end_mb: float = 0.0
    hwm_end_mb: float = 0.0
    background_busy_percent: float = 0.0
    outbox_backlog_after_closed: int | None = None
    outbox_backlog_end: int | None = None
    closed: dict[str, Any] = field(default_factory=dict)
    fixed_rate: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_log_lines: int = 0


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.python = args.python
        self.tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.databases: list[str] = []

    # -- set-up of each target

    def product(self, name: str, database_url: str, cwd: Path) -> Server:
        env = clean_env({
            "KARTOCHKA_DATABASE_URL": database_url,
            "KARTOCHKA_SECRET_KEY": secrets.token_urlsafe(32),
            "KARTOCHKA_LOG_LEVEL": "WARNING",
        })
        if self.args.product_src is not None:
            env["PYTHONPATH"] = str(self.args.product_src.resolve())
        kartochka = str(Path(self.python).parent / "kartochka")
        run_cli([kartochka, "merchant", "create", "--name", "Bench", "--slug", "bench"], env, cwd)
        out = run_cli([kartochka, "apikey", "create", "--merchant", "bench", "--scope", "till"], env, cwd)
        port = free_port()
        env[KEY_ENV] = out.strip().splitlines()[-1]
        return Server(name, [kartochka, "serve", "--port", str(port)], env,
                      f"http://127.0.0.1:{port}/api/v1", f"http://127.0.0.1:{port}/healthz")

    def create_database(self, prefix: str) -> str:
        database = f"bench_{prefix}_{self.tag}"
        pg_admin(self.args.pg_dsn, f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        return database

    def server(self, name: str) -> Server:
        cwd = self.workdir / name
        cwd.mkdir()
        if name == "product-sqlite":
            server = self.product(name, f"sqlite+aiosqlite:///{cwd / 'kartochka.db'}", cwd)
            server.sqlite_path = cwd / "kartochka.db"
            return server
        if name == "product-pg":
            database = self.create_database("kk")
            url = dsn_for(self.args.pg_dsn, database).replace("postgresql://", "postgresql+asyncpg://", 1)
            server = self.product(name, url, cwd)
            server.database = database
            return server
        database = self.create_database("peer")
        dsn = dsn_for(self.args.pg_dsn, database)
        token = "kk_" + secrets.token_urlsafe(32)
        peer = str(HERE / "peer_pos.py")
        run_cli([self.python, peer, "init", "--dsn", dsn, "--token", token], clean_env({}), cwd)
        port = free_port()
        return Server(name, [self.python, peer, "serve", "--dsn", dsn, "--port", str(port)],
                      clean_env({KEY_ENV: token}), f"http://127.0.0.1:{port}",
                      f"http://127.0.0.1:{port}/health", database)

    # -- running

    def phase(self, server: Server, pid: int, result: Measured, phase: str, *options: str) -> dict[str, Any]:
        """Run the load generator once, sampling the server's memory and CPU meanwhile."""
        out = self.workdir / server.name / f"{phase}.json"
        command = [self.python, str(Path(__file__).resolve()), "_load", "--base", server.base,
                   "--customers", str(self.args.customers), "--tag", f"{phase}-{self.tag}",
                   "--out", str(out), *options]
        sessions = pg_sessions(self.args.pg_dsn, server.database) if server.database else 0
        before = CpuSnapshot.take(pid)
        started = time.monotonic()
        loader = subprocess.Popen(command, env=server.env)
        peak = 0.0
        try:
            while loader.poll() is None:
                peak = max(peak, proc_memory(pid).get("VmRSS", 0.0))
                if time.monotonic() - started > PHASE_TIMEOUT:
                    raise RuntimeError(f"{server.name}: {phase} took over {PHASE_TIMEOUT:.0f} s")
                time.sleep(0.05)
        finally:
            stop(loader)
        if loader.returncode != 0:
            raise RuntimeError(f"{server.name}: the load generator failed in {phase}")
        figures: dict[str, Any] = json.loads(out.read_text())
        after = CpuSnapshot.take(pid)
        figures["cpu_cores"] = cores = after.cores_since(before)
        ok = max(figures["ok"], 1)
        figures["server_cpu_ms_per_request"] = round((after.server - before.server) / ok * 1000, 2)
        figures["postgres_cpu_ms_per_request"] = round((after.postgres - before.postgres) / ok * 1000, 2)
        if server.database:
            figures["pg_sessions_opened"] = pg_sessions(self.args.pg_dsn, server.database) - sessions
        figures["server_rss_peak_mb"] = round(peak, 1)
        figures["server_rss_after_mb"] = round(proc_memory(pid).get("VmRSS", 0.0), 1)
        result.rss_peak_mb = max(result.rss_peak_mb, round(peak, 1))
        result.phases[phase] = figures
        bad = figures["requests"] - figures["ok"]
        print(f"  {phase:<9} {figures['ok']:>6} ok {bad:>4} failed  {figures['per_second']:>7.1f}/s"
              f"  p50 {figures['p50_ms']:>7.2f} ms  p99 {figures['p99_ms']:>7.2f} ms"
              f"  rss peak {peak:5.1f} after {figures['server_rss_after_mb']:5.1f} MB"
              "  cores: " + " ".join(f"{k} {v:.2f}" for k, v in cores.items())
              + f"  server cpu {figures['server_cpu_ms_per_request']:.2f} ms/req"
              + (f"  pg cpu {figures['postgres_cpu_ms_per_request']:.2f} ms/req"
                 f"  new pg sessions {figures['pg_sessions_opened']}" if server.database else ""),
              flush=True)
        for failure in figures["failures"]:
            print(f"    {failure}", flush=True)
        return figures

    def measure(self, name: str) -> Measured:
        args = self.args
        server = self.server(name)
        result = Measured(name)
        log_path = self.workdir / name / "server.log"
        result.background_busy_percent = wait_quiet(args.quiet_below, args.quiet_wait)
        print(f"{name}: {server.base} (machine {result.background_busy_percent:.0f}% busy before)",
              flush=True)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(server.command, env=server.env, cwd=self.workdir / name,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(server.health, proc)
            time.sleep(args.settle)
            result.rss_idle_mb = round(proc_memory(proc.pid).get("VmRSS", 0.0), 1)
            self.phase(server, proc.pid, result, "register", "--mode", "register",
                       "--concurrency", str(args.concurrency))
            self.phase(server, proc.pid, result, "warm-up", "--mode", "closed", "--count",
                       str(args.customers), "--concurrency", str(args.concurrency))
            result.rss_after_warmup_mb = round(proc_memory(proc.pid).get("VmRSS", 0.0), 1)
            result.closed = self.phase(server, proc.pid, result, "closed", "--mode", "closed",
                                       "--count", str(args.requests), "--concurrency",
                                       str(args.concurrency), "--redeem-every", str(args.redeem_every))
            result.outbox_backlog_after_closed = outbox_backlog(server, args.pg_dsn)
            result.fixed_rate = self.phase(server, proc.pid, result, "rate", "--mode", "open",
                                           "--rate", str(args.rate), "--seconds", str(args.rate_seconds),
                                           "--concurrency", "256", "--redeem-every",
                                           str(args.redeem_every))
            time.sleep(args.settle)
            result.outbox_backlog_end = outbox_backlog(server, args.pg_dsn)
            if result.outbox_backlog_after_closed is not None:
                print(f"  outbox events not yet drained: {result.outbox_backlog_after_closed} after the"
                      f" closed loop, {result.outbox_backlog_end} at the end", flush=True)
            memory = proc_memory(proc.pid)
            result.rss_end_mb = round(memory.get("VmRSS", 0.0), 1)
            result.hwm_end_mb = round(memory.get("VmHWM", 0.0), 1)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during the run")
        except Exception:
            print(f"--- last lines of {log_path}:\n" + tail(log_path), file=sys.stderr)
            raise
        finally:
            stop(proc)
        result.server_log_lines = len(log_path.read_bytes().splitlines())
        return result

    def cleanup(self) -> None:
        for database in self.databases:
            try:
                pg_admin(self.args.pg_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            except Exception as exc:  # keep cleaning the rest
                print(f"could not drop {database}: {exc}", file=sys.stderr)
        self.databases.clear()


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------- report


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def report(results: dict[str, Measured], bare: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    at_rate = f"@{args.rate:g}/s p50"
    header = (f"{'target':<15} {'purch/s':>8} {'p50 ms':>7} {'p99 ms':>7} {at_rate:>11} {'p99':>7}"
              f" {'RSS idle MB':>12} {'RSS peak MB':>12} {'srv cpu ms':>11} {'pg cpu ms':>10}")
    print()
    print(f"closed loop: {args.requests} sales, {args.concurrency} connections;"
          f" open loop: {args.rate:g}/s for {args.rate_seconds:g} s; {args.customers} customers;"
          f" 1 in {args.redeem_every} sales redeems {REDEEM} points; cpu ms are per sale (closed loop)")
    print(header)
    print("-" * len(header))
    for name, m in results.items():
        pg_ms = f"{m.closed['postgres_cpu_ms_per_request']:.2f}" if name.endswith("-pg") else "-"
        print(f"{name:<15} {m.closed['per_second']:>8.1f} {m.closed['p50_ms']:>7.2f}"
              f" {m.closed['p99_ms']:>7.2f} {m.fixed_rate['p50_ms']:>11.2f} {m.fixed_rate['p99_ms']:>7.2f}"
              f" {m.rss_idle_mb:>12.1f} {m.rss_peak_mb:>12.1f}"
              f" {m.closed['server_cpu_ms_per_request']:>11.2f} {pg_ms:>10}")
    print(f"{'bare imports':<15} {'':>8} {'':>7} {'':>7} {'':>11} {'':>7}"
          f" {bare.get('VmRSS', 0.0):>12.1f} {bare.get('VmHWM', 0.0):>12.1f}")
    ratios: dict[str, Any] = {}
    peer = results.get("peer-pg")
    for name in ("product-pg", "product-sqlite"):
        product = results.get(name)
        if product is None or peer is None:
            continue
        ratios[f"{name}/peer-pg"] = {
            "throughput": ratio(product.closed["per_second"], peer.closed["per_second"]),
            "p50": ratio(product.closed["p50_ms"], peer.closed["p50_ms"]),
            "p99": ratio(product.closed["p99_ms"], peer.closed["p99_ms"]),
            "p99_at_rate": ratio(product.fixed_rate["p99_ms"], peer.fixed_rate["p99_ms"]),
            "rss_peak": ratio(product.rss_peak_mb, peer.rss_peak_mb),
            "server_cpu_per_sale": ratio(product.closed["server_cpu_ms_per_request"],
                                         peer.closed["server_cpu_ms_per_request"]),
        }
    print()
    for key, values in ratios.items():
        print(f"{key}: throughput x{values['throughput']}, p50 x{values['p50']}, p99 x{values['p99']},"
              f" p99 at {args.rate:g}/s x{values['p99_at_rate']}, RSS peak x{values['rss_peak']},"
              f" server CPU per sale x{values['server_cpu_per_sale']}")
    goals: dict[str, Any] = {}
    pg = results.get("product-pg")
    if pg is not None:
        goals["product-pg >= 500 purchases/s"] = pg.closed["per_second"] >= 500
        if peer is not None:
            goals["product-pg >= half the peer's throughput"] = (
                pg.closed["per_second"] >= peer.closed["per_second"] / 2)
    for name, m in results.items():
        if name.startswith("product"):
            goals[f"{name} p99 < 50 ms at {args.rate:g}/s"] = m.fixed_rate["p99_ms"] < 50
            goals[f"{name} RSS growth after warm-up (MB)"] = round(m.rss_end_mb - m.rss_after_warmup_mb, 1)
            goals[f"{name} RSS above bare imports, peak (MB)"] = round(
                m.rss_peak_mb - bare.get("VmRSS", 0.0), 1)
    failed = {name: m.closed["requests"] - m.closed["ok"] + m.fixed_rate["requests"] - m.fixed_rate["ok"]
              for name, m in results.items()}
    for key, value in goals.items():
        print(f"  {key}: {value}")
    if any(failed.values()):
        print(f"  non-2xx answers or errors: {failed}")
    return {"ratios": ratios, "goals": goals, "failed_requests": failed}


def git_head() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stdout.strip() or None
    return None


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kartochka-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated, of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--requests", type=int, default=3000, help="sales in the closed loop")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the closed loop")
    parser.add_argument("--rate", type=float, default=200.0, help="sales a second in the open loop")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--redeem-every", type=int, default=5,
                        help=f"about 1 in N measured sales redeems {REDEEM} points (0: none)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds idle before reading RSS")
    parser.add_argument("--quiet-below", type=float, default=20.0,
                        help="before each target, wait until other work keeps the CPU under this %%")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="... for at most these seconds")
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="an existing database to connect to; bench databases are created beside it and dropped")
    parser.add_argument("--python", default=sys.executable, help="the virtualenv's python")
    parser.add_argument("--product-src", type=Path,
                        help="run the product from this source tree (e.g. a `git archive` of a commit)"
                             " instead of the installed one")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")

    started = datetime.now(UTC)
    meta: dict[str, Any] = {
        "started_at": started.isoformat(), "command": " ".join([sys.executable, *sys.argv]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "git_head": git_head(),
    }
    if any(name.endswith("-pg") for name in names):
        meta["machine"]["postgresql"] = pg_admin(args.pg_dsn)
    results: dict[str, Measured] = {}
    with workspace() as workdir:
        bench = Bench(args, workdir)
        try:
            bare = bare_process(args.python, args.settle)
            for name in names:
                results[name] = bench.measure(name)
        finally:
            bench.cleanup()
    summary = report(results, bare, args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"pos_api-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({**meta, "bare": {k.lower(): round(v, 1) for k, v in bare.items()},
                               "targets": {k: asdict(v) for k, v in results.items()}, **summary},
                              indent=2, ensure_ascii=False))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
