"""The table, the ratios against the peer, the goal, and the send-limit check of a webhook.py run."""

from __future__ import annotations

import argparse
import collections
import math
from typing import Any

from webhook_procs import Measured

# Telegram's limits as the product means to keep them (core/services/limiter.py TELEGRAM).
CHAT_BURST, CHAT_RATE = 3, 1.0
BOT_BURST, BOT_RATE = 30, 30.0


# ---------------------------------------------------------------- the send limit, seen at the fake


def needed_burst(times: list[float], rate: float) -> float:
    """The smallest bucket a token bucket refilled at `rate`/s needs to have let these sends through.

    For sends i..j: (j - i + 1) - rate * (t_j - t_i); the maximum over all pairs, in one pass.
    A sequence a (burst, rate) bucket allows needs at most `burst`.
    """
    best, lowest = 0.0, math.inf
    for j, t in enumerate(sorted(times)):
        lowest = min(lowest, j - rate * t)
        best = max(best, j - rate * t - lowest + 1)
    return best


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The most sends in any `window` seconds (half-open)."""
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def limit_check(sends: list[tuple[float, int, str]], tolerance: float) -> dict[str, Any]:
    """Whether the sends the fake received keep Telegram's limits.

    `tolerance` (s) allows for the time between the product's limiter letting a message
    go and the fake reading it, which varies a little from message to message.
    """
    if not sends:
        return {"sends": 0, "holds": False}
    by_chat: dict[int, list[float]] = collections.defaultdict(list)
    for t, chat, _method in sends:
        by_chat[chat].append(t)
    times = [t for t, _c, _m in sends]
    chat_needed = {chat: needed_burst(ts, CHAT_RATE) for chat, ts in by_chat.items()}
    worst_chat = max(chat_needed, key=lambda c: chat_needed[c])
    bot_needed = needed_burst(times, BOT_RATE)
    span = max(times) - min(times)
    result = {
        "sends": len(sends), "chats": len(by_chat), "span_s": round(span, 2),
        "bot_per_second_overall": round((len(times) - 1) / span, 1) if span > 0 else None,
        "bot_most_in_1s": most_in_window(times),
        "bot_needed_burst": round(bot_needed, 2),
        "chat_most_in_1s": max(most_in_window(ts) for ts in by_chat.values()),
        "chat_needed_burst_worst": round(chat_needed[worst_chat], 2),
        "chats_over_burst": sum(1 for n in chat_needed.values() if n > CHAT_BURST + CHAT_RATE * tolerance),
        "tolerance_s": tolerance,
    }
    result["chat_holds"] = result["chats_over_burst"] == 0
    result["bot_holds"] = bot_needed <= BOT_BURST + BOT_RATE * tolerance
    result["bot_within_30_every_second"] = result["bot_most_in_1s"] <= BOT_RATE
    result["holds"] = result["chat_holds"] and result["bot_holds"]
    return result


def print_limit(name: str, check: dict[str, Any], phase: dict[str, Any]) -> None:
    if not check.get("sends"):
        print(f"{name}: no sends seen at the fake; the limit cannot be checked")
        return
    answered = (f"; {phase.get('ok', 0)} of {phase.get('requests', 0)} presses answered,"
                f" {phase.get('lost', 0)} lost" if "requests" in phase else "")
    print(f"{name}: {check['sends']} messages to {check['chats']} chats over {check['span_s']} s{answered}")
    print(f"  per bot:  {check['bot_per_second_overall']}/s overall, at most {check['bot_most_in_1s']}"
          f" in any 1 s; a token bucket at {BOT_RATE:g}/s needs a burst of {check['bot_needed_burst']}"
          f" (limit {BOT_BURST}) -> {'holds' if check['bot_holds'] else 'EXCEEDED'};"
          f" {BOT_RATE:g} in every 1 s window: {'yes' if check['bot_within_30_every_second'] else 'NO'}")
    print(f"  per chat: at most {check['chat_most_in_1s']} in any 1 s; the worst chat needs a burst of"
          f" {check['chat_needed_burst_worst']} at {CHAT_RATE:g}/s (limit {CHAT_BURST});"
          f" chats over it: {check['chats_over_burst']}"
          f" -> {'holds' if check['chat_holds'] else 'EXCEEDED'}"
          f" (timing tolerance {check['tolerance_s']:g} s)")


# ---------------------------------------------------------------- the table


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def report(results: dict[str, Measured], args: argparse.Namespace) -> dict[str, Any]:
    at_rate = f"@{args.rate:g}/s p50"
    header = (f"{'target':<15} {'upd/s':>7} {'p50 ms':>8} {'p99 ms':>8} {at_rate:>11} {'p99':>8}"
              f" {'200 p99':>8} {'RSS idle':>9} {'RSS peak':>9} {'srv ms':>7} {'pg ms':>6} {'fake ms':>8}")
    print()
    print(f"closed loop: {args.updates} presses, {args.concurrency} at a time; open loop: {args.rate:g}/s"
          f" for {args.rate_seconds:g} s; {args.customers} customers; latency = POST of the press ->"
          " the fake reads the sendPhoto; '200 p99' = POST -> 200; RSS in MB; cpu ms per press (closed)")
    print(header)
    print("-" * len(header))
    for name, m in results.items():
        if not m.closed:
            continue
        c, r = m.closed, m.fixed_rate
        pg_ms = f"{c['postgres_cpu_ms_per_request']:.2f}" if "-pg" in name else "-"
        print(f"{name:<15} {c['per_second']:>7.1f} {c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f}"
              + (f" {r['p50_ms']:>11.2f} {r['p99_ms']:>8.2f}" if r else f" {'-':>11} {'-':>8}")
              + f" {c['http_p99_ms']:>8.2f}"
              f" {m.rss_idle_mb:>9.1f} {m.rss_peak_mb:>9.1f} {c['server_cpu_ms_per_request']:>7.2f}"
              f" {pg_ms:>6} {c['fake_cpu_ms_per_request']:>8.2f}")
    ratios: dict[str, Any] = {}
    goals: dict[str, Any] = {}
    peer = results.get("peer-aiogram")
    for name in ("product-sqlite", "product-pg"):
        product = results.get(name)
        if product is None or peer is None or not product.closed or not peer.closed:
            continue
        ratios[f"{name}/peer-aiogram"] = values = {
            "throughput": ratio(product.closed["per_second"], peer.closed["per_second"]),
            "p50": ratio(product.closed["p50_ms"], peer.closed["p50_ms"]),
            "p99": ratio(product.closed["p99_ms"], peer.closed["p99_ms"]),
            "server_cpu_per_press": ratio(product.closed["server_cpu_ms_per_request"],
                                          peer.closed["server_cpu_ms_per_request"]),
            "rss_peak": ratio(product.rss_peak_mb, peer.rss_peak_mb),
        }
        goals[f"{name} >= half the peer's throughput"] = (
            product.closed["per_second"] >= peer.closed["per_second"] / 2)
        print(f"{name}/peer: throughput x{values['throughput']}, p50 x{values['p50']},"
              f" p99 x{values['p99']}, server CPU per press x{values['server_cpu_per_press']},"
              f" RSS peak x{values['rss_peak']}")
    for name, m in results.items():
        if m.limit:
            print()
            print_limit(f"{name}, the backlog queued before start", m.limit.get("backlog", {}),
                        {"ok": m.sends_before_load})
            print_limit(f"{name}, presses at {args.limit_rate:g}/s + {args.hot_chats} chats x"
                        f" {args.hot_presses} at once", m.limit.get("presses", {}),
                        m.phases.get("limited", {}))
            goals[f"{name}: the send limit holds (chat: burst 3 then 1/s; bot: burst 30 then 30/s)"] = (
                m.limit.get("holds"))
            goals[f"{name}: at most 30 sends per bot in every 1 s window"] = all(
                m.limit.get(part, {}).get("bot_within_30_every_second", True)
                for part in ("backlog", "presses"))
    print()
    for key, value in goals.items():
        print(f"  {key}: {value}")
    for name, m in results.items():
        if m.table_activity:
            print(f"  {name}, per press (pg_stat_user_tables: scans, rows inserted/updated/deleted): "
                  + "; ".join(f"{table} {a['scans']:g}/{a['inserted']:g}/{a['updated']:g}/{a['deleted']:g}"
                              for table, a in m.table_activity.items()))
    for name, m in results.items():
        if m.tables:
            print(f"  {name} at the end: " + "; ".join(
                f"{table} " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
                for table, counts in m.tables.items()))
    return {"ratios": ratios, "goals": goals}
