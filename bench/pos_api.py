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
   it starts once the outbox has handed on what the closed loop left (a steady load, not
   the catching up after an overload; how long that took is reported);

while the driver samples the server's VmRSS (peak under load) and CPU time. The load
generator is a separate process (``pos_api.py _load``), so its CPU is not the server's.
Every run stops by itself: fixed counts, per-request timeouts, a timeout per phase.

    /work/venv/bin/python bench/pos_api.py                       # everything, a few minutes
    /work/venv/bin/python bench/pos_api.py --targets product-pg,peer-pg --requests 5000
    /work/venv/bin/python bench/pos_api.py --targets product-pg,peer-pg --rounds 3   # medians

Results: one table on stdout and bench/results/pos_api-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pos_load import (
    HERE,
    KEY_ENV,
    PHASE_TIMEOUT,
    REDEEM,
    TARGETS,
    load_main,
)
from pos_procs import (
    CpuSnapshot,
    Measured,
    Server,
    bare_process,
    clean_env,
    drop_databases,
    dsn_for,
    free_port,
    outbox_backlog,
    pg_admin,
    pg_sessions,
    proc_memory,
    run_cli,
    serve_libraries,
    stop,
    wait_drained,
    wait_healthy,
    wait_quiet,
)
from pos_report import git_head, report, rounds_summary, workspace

# ---------------------------------------------------------------- one target


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
            if server.database is not None:  # statistics, as a live database has them (README)
                pg_admin(dsn_for(args.pg_dsn, server.database), "ANALYZE")
            result.rss_after_warmup_mb = round(proc_memory(proc.pid).get("VmRSS", 0.0), 1)
            result.closed = self.phase(server, proc.pid, result, "closed", "--mode", "closed",
                                       "--count", str(args.requests), "--concurrency",
                                       str(args.concurrency), "--redeem-every", str(args.redeem_every))
            result.outbox_backlog_after_closed = outbox_backlog(server, args.pg_dsn)
            if result.outbox_backlog_after_closed:
                result.outbox_drain_seconds = wait_drained(server, args.pg_dsn, args.drain_wait)
            result.fixed_rate = self.phase(server, proc.pid, result, "rate", "--mode", "open",
                                           "--rate", str(args.rate), "--seconds", str(args.rate_seconds),
                                           "--concurrency", "256", "--redeem-every",
                                           str(args.redeem_every))
            time.sleep(args.settle)
            result.outbox_backlog_end = outbox_backlog(server, args.pg_dsn)
            if result.outbox_backlog_after_closed is not None:
                drained = ("none left" if not result.outbox_backlog_after_closed
                           else f"handed on in {result.outbox_drain_seconds} s before the open loop"
                           if result.outbox_drain_seconds is not None
                           else f"not all handed on within {args.drain_wait:.0f} s")
                print(f"  outbox events not yet drained: {result.outbox_backlog_after_closed} after the"
                      f" closed loop ({drained}), {result.outbox_backlog_end} at the end", flush=True)
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
        drop_databases(self.args.pg_dsn, self.databases)


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


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
    parser.add_argument("--drain-wait", type=float, default=120.0,
                        help="before the open loop, wait at most this long for the outbox to catch up")
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
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the targets this many times, in the reverse order every other"
                             " round, and give every round's ratios and their median (the machine's"
                             " speed drifts)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
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
    rounds: list[dict[str, Measured]] = []
    summaries: list[dict[str, Any]] = []
    with workspace() as workdir:
        bench = Bench(args, workdir)
        try:
            env = dict(os.environ)
            if args.product_src is not None:
                env["PYTHONPATH"] = str(args.product_src.resolve())
            libraries = serve_libraries(args.python, env)
            bare = bare_process(args.python, args.settle, libraries)
            print(f"bare process: {len(libraries)} modules of the libraries serve imports,"
                  f" RSS {bare.get('VmRSS', 0.0):.1f} MB", flush=True)
            tag = bench.tag
            for number in range(1, args.rounds + 1):
                if args.rounds > 1:  # each round on fresh databases and directories
                    print(f"\n== round {number} of {args.rounds}", flush=True)
                    bench.tag, bench.workdir = f"{tag}_r{number}", workdir / f"round{number}"
                    bench.workdir.mkdir()
                order = names if number % 2 else names[::-1]  # neither always goes first
                results = {name: bench.measure(name) for name in order}
                bench.cleanup()  # a round's databases gone before the next (autovacuum)
                rounds.append({name: results[name] for name in names})
                summaries.append(report(rounds[-1], bare, args))
        finally:
            bench.cleanup()
    document = {**meta, "bare": {**{k.lower(): round(v, 1) for k, v in bare.items()},
                                 "libraries": sorted({n.split(".")[0] for n in libraries})},
                "targets": {k: asdict(v) for k, v in rounds[-1].items()}, **summaries[-1]}
    if args.rounds > 1:
        document["rounds"] = [{"targets": {k: asdict(v) for k, v in results.items()}, **summary}
                              for results, summary in zip(rounds, summaries, strict=True)]
        document["spread"] = rounds_summary(
            summaries, ("throughput", "p99_at_rate", "server_cpu_per_sale"), "p99_at_rate_ms")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"pos_api-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

