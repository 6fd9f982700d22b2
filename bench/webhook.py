""""Show my card" through the whole Telegram stack: presses/s, p50/p99 and memory against a bare aiogram bot.

One press is a callback_query with data "card" POSTed to `/webhooks/telegram/{bot_id}`
of a real `kartochka serve` (webhook mode: KARTOCHKA_PUBLIC_URL set): stored update ->
aiogram -> dialog -> core -> card PNG -> outgoing row -> dispatcher -> TelegramSender ->
the fake Bot API (tests/fakes/telegram.py, in a process of its own: bench/webhook_fake.py),
which reads the sendPhoto. The latency of a press runs from its POST to that moment.

Targets, one after another (the fake and the machine shared, nothing else):

* ``product-sqlite``, ``product-pg`` — `kartochka serve` on a fresh SQLite file / PostgreSQL
  database, the send limit lifted (KARTOCHKA_SEND_RATE_LIMIT=false), ``--customers`` customers
  each with a linked Telegram account, made through the core services (webhook_setup.py);
* ``peer-aiogram`` — bench/webhook_peer.py: aiogram's own SimpleRequestHandler, answering a
  press with answerCallbackQuery and a photo of the same size, on the same fake;
* ``limited-pg`` (or ``limited-sqlite``) — the product with the limit on: ``--backlog`` messages
  queued before serve starts (drained at full speed) and ``--hot-presses`` to each of
  ``--hot-chats`` chats, then presses at ``--limit-rate`` a second with the hot chats pressed
  many times at once; the sends' arrival times at the fake are checked against Telegram's
  limits (per chat a burst of 3 then 1/s, per bot 30/s).

Per target: a warm-up, a closed loop (``--updates`` presses, ``--concurrency`` at a time), an open
loop (``--rate`` a second for ``--rate-seconds``, latency from when each press was due);
``--profile`` adds a closed loop under py-spy and prints where the server's CPU went.

    /work/venv/bin/python bench/webhook.py                     # everything, about 5 minutes
    /work/venv/bin/python bench/webhook.py --targets product-pg,peer-aiogram --updates 5000
    /work/venv/bin/python bench/webhook.py --customers 60 --updates 200 --warmup 30 --rate 10 \
        --rate-seconds 2 --limit-rate 40 --limit-seconds 2 --backlog 100   # smoke, about a minute

Results: one table on stdout and bench/results/webhook-<timestamp>.json.
"""

from __future__ import annotations

import argparse
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

from pos_api import tail
from pos_load import PHASE_TIMEOUT
from pos_procs import (
    clean_env,
    drop_databases,
    pg_admin,
    proc_memory,
    stop,
    wait_healthy,
    wait_quiet,
)
from pos_report import git_head, rounds_summary, workspace
from webhook_options import parse
from webhook_procs import (
    Measured,
    Snapshot,
    Target,
    activity_per_press,
    fake_methods,
    pg_activity,
    pg_xacts,
    sends_of,
    settle_sends,
    start_fake,
    table_statuses,
    telegram_id,
    wait_webhook,
)
from webhook_profile import Profiler, print_summary
from webhook_report import limit_check, report
from webhook_targets import peer_target, product_target

UPDATE_STEP = 10_000_000  # update ids of each phase start this far apart: never a redelivery


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, fake: subprocess.Popen[bytes],
                 fake_url: str) -> None:
        self.args = args
        self.workdir = workdir
        self.fake, self.fake_url = fake, fake_url
        self.tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.databases: list[str] = []
        self.next_update = UPDATE_STEP

    # -- set-up

    def target(self, name: str, cwd: Path) -> Target:
        if name.startswith("peer"):
            return peer_target(self.args, name, cwd, self.fake_url)
        return product_target(self.args, name, cwd, self.fake_url, self.tag, self.databases)

    # -- running

    def phase(self, target: Target, pid: int, result: Measured, hook: dict[str, Any], phase: str,
              *options: str) -> dict[str, Any]:
        """Run the load generator once, sampling the server's memory and CPU meanwhile."""
        out = target.cwd / f"{phase}.json"
        url = target.base + "/" + hook["url"].split("/", 3)[3]
        command = [self.args.python, str(Path(__file__).resolve()), "_load", "--url", url,
                   "--secret", hook["secret_token"], "--fake", self.fake_url,
                   "--bot", str(telegram_id(target.token)), "--customers", str(self.args.customers),
                   "--first-update", str(self.next_update), "--out", str(out), *options]
        self.next_update += UPDATE_STEP
        xacts = pg_xacts(self.args.pg_dsn, target.database) if target.database else 0
        calls = fake_methods(self.fake_url)
        before = Snapshot.take(pid, self.fake.pid)
        started = time.monotonic()
        loader = subprocess.Popen(command, env=clean_env({}))
        peak = 0.0
        try:
            while loader.poll() is None:
                peak = max(peak, proc_memory(pid).get("VmRSS", 0.0))
                if time.monotonic() - started > PHASE_TIMEOUT:
                    raise RuntimeError(f"{target.name}: {phase} took over {PHASE_TIMEOUT:.0f} s")
                time.sleep(0.05)
        finally:
            stop(loader)
        if loader.returncode != 0:
            raise RuntimeError(f"{target.name}: the load generator failed in {phase}")
        figures: dict[str, Any] = json.loads(out.read_text())
        after = Snapshot.take(pid, self.fake.pid)
        figures["cpu_cores"] = cores = after.cores_since(before)
        ok = max(figures["ok"], 1)
        figures["server_cpu_ms_per_request"] = round((after.cpu.server - before.cpu.server) / ok * 1000, 2)
        figures["postgres_cpu_ms_per_request"] = round(
            (after.cpu.postgres - before.cpu.postgres) / ok * 1000, 2)
        figures["fake_cpu_ms_per_request"] = round((after.fake - before.fake) / ok * 1000, 2)
        figures["bot_api_calls_per_request"] = {
            method: round((count - calls.get(method, 0)) / ok, 2)
            for method, count in sorted(fake_methods(self.fake_url).items())
            if count > calls.get(method, 0)}
        if target.database:
            time.sleep(1.2)  # the backends' statistics reach pg_stat_database within a second
            xacts = pg_xacts(self.args.pg_dsn, target.database) - xacts
            figures["pg_xacts_per_request"] = round(xacts / ok, 1)
        figures["server_rss_peak_mb"] = round(peak, 1)
        result.rss_peak_mb = max(result.rss_peak_mb, round(peak, 1))
        result.phases[phase] = figures
        bad = figures["requests"] - figures["ok"]
        print(f"  {phase:<8} {figures['ok']:>6} ok {bad:>4} failed  {figures['per_second']:>7.1f}/s"
              f"  p50 {figures['p50_ms']:>8.2f} ms  p99 {figures['p99_ms']:>8.2f} ms"
              f"  (200 p99 {figures['http_p99_ms']:.2f} ms)  rss peak {peak:5.1f} MB\n"
              "      cores: " + " ".join(f"{k} {v:.2f}" for k, v in cores.items())
              + f"  cpu ms/press: server {figures['server_cpu_ms_per_request']:.2f}"
              + (f" pg {figures['postgres_cpu_ms_per_request']:.2f}"
                 f" (pg transactions/press {figures['pg_xacts_per_request']})" if target.database else "")
              + f" fake {figures['fake_cpu_ms_per_request']:.2f}\n      Bot API calls/press: "
              + (" ".join(f"{k} {v}" for k, v in figures["bot_api_calls_per_request"].items())
                 or "none"), flush=True)
        if figures["other_sends"] or figures["unexpected_photos"]:
            print(f"      other sends {figures['other_sends']}, unmatched photos"
                  f" {figures['unexpected_photos']}", flush=True)
        for failure in figures["failures"]:
            print(f"    {failure}", flush=True)
        return figures

    def run_phases(self, target: Target, pid: int, result: Measured, hook: dict[str, Any]) -> None:
        args = self.args
        if target.limited:
            started = time.monotonic()
            count = args.limit_rate * args.limit_seconds + args.hot_chats * args.hot_presses
            timeout = count / 30 + 30
            self.phase(target, pid, result, hook, "limited", "--mode", "open", "--rate",
                       str(args.limit_rate), "--seconds", str(args.limit_seconds), "--hot-chats",
                       str(args.hot_chats), "--hot-presses", str(args.hot_presses), "--timeout",
                       f"{timeout:.0f}")
            presses = limit_check(sends_of(self.fake_url, telegram_id(target.token), started),
                                  args.limit_tolerance)
            result.limit = {"backlog": result.limit.get("backlog", {}), "presses": presses}
            result.limit["holds"] = bool(presses.get("holds")) and bool(
                result.limit["backlog"].get("holds", True))
            return
        self.phase(target, pid, result, hook, "warm-up", "--mode", "closed", "--count",
                   str(min(args.customers, args.warmup)), "--concurrency", str(args.concurrency))
        result.closed = self.phase(target, pid, result, hook, "closed", "--mode", "closed", "--count",
                                   str(args.updates), "--concurrency", str(args.concurrency))
        if args.profile and target.kind == "product":
            args.out_dir.mkdir(parents=True, exist_ok=True)
            out = args.out_dir / f"webhook-profile-{target.name}-{self.tag}.txt"
            profiler = Profiler(args.py_spy, pid, out)
            try:
                self.phase(target, pid, result, hook, "profiled", "--mode", "closed", "--count",
                           str(args.updates), "--concurrency", str(args.concurrency))
            finally:
                result.profile = profiler.finish()
            print_summary(f"  {target.name} under py-spy", result.profile)
        if args.rate > 0 and args.rate_seconds > 0:
            result.fixed_rate = self.phase(target, pid, result, hook, "rate", "--mode", "open", "--rate",
                                           str(args.rate), "--seconds", str(args.rate_seconds))

    def measure(self, name: str) -> Measured:
        args = self.args
        cwd = self.workdir / name
        cwd.mkdir()
        result = Measured(name)
        result.background_busy_percent = wait_quiet(args.quiet_below, args.quiet_wait)
        print(f"{name}: (machine {result.background_busy_percent:.0f}% busy before)", flush=True)
        target = self.target(name, cwd)
        result.setup_seconds = target.setup_seconds
        log_path = cwd / "server.log"
        serve_started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(target.command, env=target.env, cwd=cwd, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            wait_healthy(target.health, proc)
            hook = wait_webhook(self.fake_url, target.token, target.webhook_path_contains)
            result.sends_before_load = settle_sends(self.fake_url, telegram_id(target.token))
            if target.limited:
                result.limit = {"backlog": limit_check(
                    sends_of(self.fake_url, telegram_id(target.token), serve_started), args.limit_tolerance)}
            time.sleep(args.settle)
            result.rss_idle_mb = round(proc_memory(proc.pid).get("VmRSS", 0.0), 1)
            activity = pg_activity(args.pg_dsn, target.database) if target.database else {}
            print(f"  serving at {target.base}; RSS idle {result.rss_idle_mb} MB;"
                  f" messages sent before the load: {result.sends_before_load}", flush=True)
            self.run_phases(target, proc.pid, result, hook)
            result.rss_end_mb = round(proc_memory(proc.pid).get("VmRSS", 0.0), 1)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during the run")
        except Exception:
            print(f"--- last lines of {log_path}:\n" + tail(log_path), file=sys.stderr)
            raise
        finally:
            stop(proc)
        if target.kind == "product":
            result.tables = table_statuses(target, args.pg_dsn)
        if target.database and not target.limited:
            time.sleep(1.0)
            presses = sum(result.tables.get("inbound_updates", {}).values())
            result.table_activity = activity_per_press(activity, pg_activity(args.pg_dsn, target.database),
                                                       presses)
        result.server_log_lines = len(log_path.read_bytes().splitlines())
        if result.server_log_lines:
            print(f"  {result.server_log_lines} lines in the server's log; last:\n" + tail(log_path, 5))
        return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        from webhook_load import load_main

        return load_main(argv[1:])
    if argv[:1] == ["_setup"]:
        from webhook_setup import setup_main

        return setup_main(argv[1:])
    args = parse(argv)
    started = datetime.now(UTC)
    meta: dict[str, Any] = {
        "started_at": started.isoformat(), "command": " ".join([sys.executable, *sys.argv]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
        "git_head": git_head(),
    }
    if any("-pg" in name for name in args.names):
        meta["machine"]["postgresql"] = pg_admin(args.pg_dsn)
    rounds: list[dict[str, Measured]] = []
    summaries: list[dict[str, Any]] = []
    with workspace() as workdir:
        fake, fake_url = start_fake(args.python, workdir / "fake.log")
        bench = Bench(args, workdir, fake, fake_url)
        try:
            tag, root = bench.tag, bench.workdir
            for number in range(1, args.rounds + 1):
                if args.rounds > 1:  # each round on fresh databases and directories
                    print(f"\n== round {number} of {args.rounds}", flush=True)
                    bench.tag, bench.workdir = f"{tag}_r{number}", root / f"round{number}"
                    bench.workdir.mkdir()
                order = args.names if number % 2 else args.names[::-1]  # neither always first
                results = {name: bench.measure(name) for name in order}
                results = {name: results[name] for name in args.names}
                drop_databases(args.pg_dsn, bench.databases)  # gone before the next round
                rounds.append(results)
                summaries.append(report(results, args))
        finally:
            stop(fake)
            drop_databases(args.pg_dsn, bench.databases)
    spread = (rounds_summary(summaries, ("throughput", "server_cpu_per_press")) if args.rounds > 1
              else {})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"webhook-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {**meta, "targets": {k: asdict(v) for k, v in rounds[-1].items()}, **summaries[-1]}
    if args.rounds > 1:
        document["rounds"] = [{"targets": {k: asdict(v) for k, v in results.items()}, **summary}
                              for results, summary in zip(rounds, summaries, strict=True)]
        document["spread"] = spread
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
