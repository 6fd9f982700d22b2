"""Processes for pos_api.py: RSS and CPU from /proc, a quiet machine, servers, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pos_load import MB, REPO

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


def wait_drained(server: Server, admin_dsn: str, timeout: float) -> float | None:
    """Seconds until the outbox has handed on every event (None: unknown, or not within `timeout`).

    The open loop measures a steady load, not the catching up after the closed loop's
    overload: it starts once the drain is done (the time it took is reported as well).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        left = outbox_backlog(server, admin_dsn)
        if left is None:
            return None
        if left <= 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.1)
    return None


def dsn_for(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + database


# What `kartochka serve` imports: its composition modules, and what it loads at start inside
# functions (the database drivers, the migrations).
SERVE_MODULES = ("app.cli", "app.web", "app.container", "app.logs", "app.heap", "core.db.migrate",
                 "alembic.command", "asyncpg", "aiosqlite", "sqlalchemy.ext.asyncio")
_LIST_LIBRARIES = """
import importlib, json, sys, sysconfig
for name in {names!r}:
    importlib.import_module(name)
roots = tuple({{sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}})
ours = {ours!r}
print(json.dumps(sorted(
    name for name, module in list(sys.modules.items())
    if (getattr(module, "__file__", None) or "").startswith(roots)
    and name.split(".")[0] not in ours
    and not name.startswith(("__editable__", "_distutils_hack")))))
"""
# Our own packages, as the import contracts name them: left out of the bare process.
OUR_PACKAGES = tuple(tomllib.loads((REPO / "pyproject.toml").read_text())
                     ["tool"]["importlinter"]["root_packages"])


def serve_libraries(python: str, env: dict[str, str] | None = None) -> list[str]:
    """Every third-party module (dotted name) that `kartochka serve`'s code imports; with
    PYTHONPATH in `env`, that tree's code (-P: not the current directory's)."""
    out = subprocess.run(
        [python, "-P", "-c", _LIST_LIBRARIES.format(names=SERVE_MODULES, ours=OUR_PACKAGES)],
        capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"listing serve's libraries failed:\n{out.stderr[-2000:]}")
    names: list[str] = json.loads(out.stdout)
    return names


def bare_process(python: str, settle: float, libraries: list[str]) -> dict[str, float]:
    """RSS of a process that imports the same libraries as the product (none of its code)
    and sleeps."""
    code = ("import importlib, time\nfailed = []\n"
            f"for name in {libraries!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception:\n        failed.append(name)\n"
            "print('ready', *failed, flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready, *failed = proc.stdout.readline().decode().split() or [""]
        if ready != "ready":
            raise RuntimeError("the bare process did not start")
        if failed:  # a smaller baseline than serve's: say so
            print(f"bare process: {len(failed)} modules would not import alone:"
                  f" {' '.join(failed[:10])}", flush=True)
        time.sleep(settle)
        return proc_memory(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


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
    outbox_drain_seconds: float | None = None  # after the closed loop, idle
    closed: dict[str, Any] = field(default_factory=dict)
    fixed_rate: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_log_lines: int = 0


def drop_databases(admin_dsn: str, databases: list[str]) -> None:
    for database in databases:
        try:
            pg_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        except Exception as exc:  # keep cleaning the rest
            print(f"could not drop {database}: {exc}", file=sys.stderr)
    databases.clear()
