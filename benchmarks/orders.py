"""Benchmark: what each listing order costs (issue 22). Usage:

    .venv/bin/python benchmarks/orders.py                    # the issue's sizes (~6 min)
    .venv/bin/python benchmarks/orders.py --skip-full-scan   # part 1 only (~1 min)

Per order (newest `updatedAt`, last message, created first):

1. *Steady state*: 2,000 leads (100 pages of 20); a first full run, then 2 days of 4 runs a day
   with a day's changes spread before them (2 new messages, 1 status-only change, 2 new
   conversations before each run), `full_scan_every_hours: 24` (`tests/daily_changes.py`).
   Prints the lead requests of each run between the daily full scans (after the first one
   that followed changes), the pages the changes sat on, and changes lost (must be 0).
   Goal: at most changed pages + 2 requests per run.
2. *Full scan on a slow API*: 150 pages of 20, each answer after 1.2 s, 100 requests a minute
   per token, the tap as a user runs it
   (`python -m tap_botpenguin`, default settings). Prints distinct pages a minute and 429s.
   Goal: at least 85 pages a minute, no 429.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.daily_changes: the trial the tests run, at full size

from tap_botpenguin.sandbox import SANDBOX_TOKEN, Bot, Sandbox, make_inbox  # noqa: E402
from tests.daily_changes import run_days  # noqa: E402

ORDERS = ("updated", "last_message", "created")
CUSTOMER = "c" * 24
BOT = "b" * 24
LATENCY = 1.2


def steady_state(order: str) -> str:
    """Requests per run between daily full scans; the line to print."""
    trial = run_days(order, leads=2000, page_size=20, days=2, runs_per_day=4)
    steady = trial.steady()
    requests = [run.requests for run in steady]
    bound = [run.changed_pages + 2 for run in steady]
    met = all(got <= most for got, most in zip(requests, bound, strict=True))
    fulls = [run.requests for run in trial.runs if run.full]
    return (
        f"{order:>13}: requests per run between full scans {requests} "
        f"(changed pages + 2: {bound}) {'OK' if met else 'MISSED'}; "
        f"full scans {fulls}; lost {len(trial.lost())}"
    )


def full_scan(order: str) -> str:
    """Pages a minute of a first full scan on a slow API; the line to print."""
    bot = Bot(BOT, CUSTOMER, SANDBOX_TOKEN, leads=make_inbox("slow", 150 * 20), chats=[])
    sandbox = Sandbox(
        bots=[bot],
        page_size=20,
        order=order,
        latency=LATENCY,
        rate_limit=100,
        rate_window=60,
    )
    with sandbox, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        settings = {"bot_token": SANDBOX_TOKEN, "customer_id": CUSTOMER, "bot_id": BOT}
        settings["api_url"] = sandbox.url
        config.write_text(json.dumps(settings))
        subprocess.run(
            [sys.executable, "-m", "tap_botpenguin", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        leads = [r for r in sandbox.listing_requests() if r.params["type"] == "lead"]
        span = max(r.at for r in leads) - min(r.at for r in leads) + LATENCY
        last = sandbox.pages(BOT, "lead")  # pages past the end (a window's tail) not counted
        pages = {
            r.params["page"] for r in leads if r.status == 200 and int(r.params["page"]) <= last
        }
        throttled = sum(r.status == 429 for r in sandbox.requests)
    rate = len(pages) / span * 60
    met = "OK" if rate >= 85 and not throttled else "MISSED"
    return (
        f"{order:>13}: {len(pages)} distinct pages in {span:.0f} s: {rate:.0f} pages/min, "
        f"{len(leads)} requests, {throttled} x 429 {met}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", nargs="+", choices=ORDERS, default=list(ORDERS))
    parser.add_argument("--skip-full-scan", action="store_true")
    args = parser.parse_args()
    print("1. steady state, 2,000 leads, changes before every run, full scan daily")
    for order in args.orders:
        print(steady_state(order), flush=True)
    if args.skip_full_scan:
        return
    print("2. full scan, 150 pages, 1.2 s answers, 100 requests a minute")
    for order in args.orders:
        print(full_scan(order), flush=True)


if __name__ == "__main__":
    main()
