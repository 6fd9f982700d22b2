"""The table, the ratios against the peer and the goals, at the end of a pos_api.py run."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pos_load import (
    REDEEM,
    REPO,
)
from pos_procs import (
    Measured,
)

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
    at_rate = {name: m.fixed_rate["p99_ms"] for name, m in results.items() if name.startswith("product")}
    failed = {name: m.closed["requests"] - m.closed["ok"] + m.fixed_rate["requests"] - m.fixed_rate["ok"]
              for name, m in results.items()}
    for key, value in goals.items():
        print(f"  {key}: {value}")
    if any(failed.values()):
        print(f"  non-2xx answers or errors: {failed}")
    return {"ratios": ratios, "goals": goals, "p99_at_rate_ms": at_rate, "failed_requests": failed}


def rounds_summary(summaries: list[dict[str, Any]], keys: tuple[str, ...],
                   figures: str | None = None) -> dict[str, Any]:
    """Each ratio of `keys` over the rounds (and each figure of the summaries' `figures`
    entry): every round's value and the median, printed. None is a round that measured nothing."""
    series: dict[str, list[Any]] = {}
    for pair in summaries[0].get("ratios", {}):
        for key in keys:
            series[f"{pair} {key}"] = [s["ratios"].get(pair, {}).get(key) for s in summaries]
    for name in summaries[0].get(figures, {}) if figures else ():
        series[f"{name} {figures}"] = [s[figures].get(name) for s in summaries]
    spread: dict[str, Any] = {}
    print()
    for name, values in series.items():
        known = [v for v in values if v is not None]
        spread[name] = {"rounds": values,
                        "median": round(statistics.median(known), 2) if known else None}
        unit = ("x{}" if name.startswith(tuple(summaries[0].get("ratios", {}))) else "{} ms").format
        print(f"  {name} by round: " + ", ".join(unit(v) for v in values)
              + f"; median {unit(spread[name]['median'])}")
    return spread


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


