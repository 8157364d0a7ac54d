"""Benchmark: several tokens and a slow API. How long K bots take (one token each) against one.

The sandbox enforces 100 requests per minute per token and answers each listing request after
a fixed latency; the tap runs as a user runs it (`python -m tap_botpenguin`). Usage:

    .venv/bin/python benchmarks/concurrency.py                      # K = 1, 4 at 0.3 s
    .venv/bin/python benchmarks/concurrency.py --tokens 1 4 16 --latency 0.3 1.2 --pages 20
    .venv/bin/python benchmarks/concurrency.py --tokens 1 --latency 1.2 2.0 --pages 210
    .venv/bin/python benchmarks/concurrency.py --memory 60000 --tokens 1 8
    .venv/bin/python benchmarks/concurrency.py --footprint --tokens 1 100 1000 1500 --pages 4

Prints wall(K), wall(K)/wall(1), requests per minute per token (over each token's own span,
and after its first minute: the first window may burst to the whole allowance at once), pages
per minute (requests minus the page-1 checks of pages read ahead) and the number of 429s.
Goals (issue 15): wall(K)/wall(1) <= 1.3 for K <= 16;
>= 95 requests/min per token at up to 2 s per answer on listings over 200 pages; no 429.
`--memory N` instead prints the tap's peak RSS reading N records spread over K tokens (no
latency, no rate limit): the buffers must keep it flat (goal: within 1.3x of one token's).
`--footprint` prints, for K bots with a token each (leads and chats of `--pages` pages of 10
each, no latency or rate limit, open files limited to `--nofile`, 1,024 by default), the
tap's peak RSS, its peak open descriptors, its exit code and the records it wrote (issue 23:
flat in K, every record, exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from tap_botpenguin.sandbox import Bot, Sandbox, make_inbox

ROOT = Path(__file__).resolve().parents[1]

CUSTOMER = "c" * 24
PAGE_SIZE = 20


def _bots(tokens: int, pages: int) -> list[Bot]:
    return [
        Bot(
            f"{index:024x}",
            CUSTOMER,
            f"bench-token-{index:04d}-5f2e9c",
            leads=make_inbox(f"k{index}", pages * PAGE_SIZE - 1),
            chats=[],
        )
        for index in range(1, tokens + 1)
    ]


def run(tokens: int, latency: float, pages: int, settings: dict[str, object]) -> dict[str, float]:
    """One run of the tap over `tokens` bots of `pages` pages each; its figures."""
    bots = _bots(tokens, pages)
    with Sandbox(bots=bots, page_size=PAGE_SIZE, latency=latency) as server:
        config = {
            "customer_id": CUSTOMER,
            "bots": [{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in bots],
            "api_url": server.url,
            **settings,
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.json"
            path.write_text(json.dumps(config))
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "tap_botpenguin", "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            wall = time.perf_counter() - started
        per_token: dict[str, list[float]] = defaultdict(list)
        first_pages: dict[str, int] = defaultdict(int)  # page 1 asked, per token
        listings: dict[str, set[tuple[str, str]]] = defaultdict(set)
        throttled = 0
        for request in server.listing_requests():
            token = request.headers.get("x-bot-token", "")
            per_token[token].append(request.at)
            first_pages[token] += request.params.get("page") == "1"
            listings[token].add((request.params["botId"], request.params["type"]))
            throttled += request.status == 429
    rates, steady, page_rates = [], [], []
    for token, times in per_token.items():
        span = max(times) - min(times) + latency
        rates.append(len(times) / span * 60)
        # Page 1 asked again after a window of pages read ahead is a check, not a page.
        checks = first_pages[token] - len(listings[token])
        page_rates.append((len(times) - checks) / span * 60)
        # After the first minute: the first window's burst (up to the limit at once) excluded.
        later = [at for at in times if at >= min(times) + 60]
        if len(later) > 1:
            steady.append(len(later) / (max(later) - min(times) - 60 + latency) * 60)
    return {
        "wall": wall,
        "rate": min(rates),
        "pages": min(page_rates),
        "steady": min(steady, default=float("nan")),
        "throttled": throttled,
    }


def peak_rss(tokens: int, records: int, settings: dict[str, object]) -> int:
    """Peak RSS (KiB) of the tap reading `records` leads spread over `tokens` bots/tokens."""
    bots = [
        Bot(
            f"{index:024x}",
            CUSTOMER,
            f"bench-token-{index:04d}-5f2e9c",
            leads=make_inbox(f"m{index}", records // tokens),
            chats=[],
        )
        for index in range(1, tokens + 1)
    ]
    with Sandbox(bots=bots, page_size=100, rate_limit=None) as server:
        config = {
            "customer_id": CUSTOMER,
            "bots": [{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in bots],
            "api_url": server.url,
            "requests_per_minute": 1_000_000,  # memory, not the allowance: throttle lifted
            **settings,
        }
        with tempfile.TemporaryDirectory() as tmp:
            path, out = Path(tmp) / "config.json", Path(tmp) / "peak"
            path.write_text(json.dumps(config))
            wrapper = [sys.executable, str(ROOT / "benchmarks/peak_rss.py"), str(out)]
            subprocess.run(
                [*wrapper, "tap_botpenguin", "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            return int(out.read_text())


FOOTPRINT_PAGE_SIZE = 10


def footprint(tokens: int, pages: int, nofile: int) -> dict[str, int]:
    """Peak RSS (KiB), peak open descriptors, exit code and records of one run over `tokens`
    bots with a token each, open files limited to `nofile` (as `ulimit -n` does)."""
    count = pages * FOOTPRINT_PAGE_SIZE
    bots = [
        Bot(
            f"{index:024x}",
            CUSTOMER,
            f"bench-token-{index:04d}-5f2e9c",
            leads=make_inbox(f"f{index}", count),
            chats=make_inbox(f"g{index}", count),
        )
        for index in range(1, tokens + 1)
    ]
    with Sandbox(bots=bots, page_size=FOOTPRINT_PAGE_SIZE, rate_limit=None) as server:
        config = {
            "customer_id": CUSTOMER,
            "bots": [{"bot_id": bot.bot_id, "bot_token": bot.token} for bot in bots],
            "api_url": server.url,
            "requests_per_minute": 1_000_000,
        }
        with tempfile.TemporaryDirectory() as tmp:
            path, out = Path(tmp) / "config.json", Path(tmp) / "peak"
            path.write_text(json.dumps(config))
            tap_command = [sys.executable, str(ROOT / "benchmarks/peak_rss.py"), str(out)]
            tap_command += ["tap_botpenguin", "--config", str(path)]
            with subprocess.Popen(  # `exec`: the shell's process becomes the tap's
                ["sh", "-c", f'ulimit -n {nofile} && exec "$@"', "sh", *tap_command],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            ) as tap:
                assert tap.stdout is not None
                records, descriptors = 0, 0
                fds = Path(f"/proc/{tap.pid}/fd")
                for line in tap.stdout:  # one line at a time: a target reading as it comes
                    records += line.startswith(b'{"type":"RECORD"') or line.startswith(
                        b'{"type": "RECORD"'
                    )
                    if records % 50 == 0:
                        with contextlib.suppress(OSError):  # the process is exiting
                            descriptors = max(descriptors, len(os.listdir(fds)))
                code = tap.wait()
            kib = int(out.read_text()) if out.exists() else 0
    return {"rss": kib, "fds": descriptors, "code": code, "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.3])
    parser.add_argument("--pages", type=int, default=20, help="leads pages per bot")
    parser.add_argument("--setting", action="append", default=[], help="name=json value")
    parser.add_argument("--memory", type=int, help="peak RSS reading this many records")
    parser.add_argument("--footprint", action="store_true", help="peak RSS and descriptors")
    parser.add_argument("--nofile", type=int, default=1024, help="open files (--footprint)")
    args = parser.parse_args()
    settings = {name: json.loads(value) for name, value in (s.split("=", 1) for s in args.setting)}
    if args.memory:
        base_kib = None
        for tokens in args.tokens:
            kib = peak_rss(tokens, args.memory, settings)
            base_kib = base_kib or kib
            print(
                f"{args.memory} records over K={tokens:>2} tokens: peak RSS {kib / 1024:6.1f} MiB "
                f"({kib / base_kib:.2f}x K={args.tokens[0]})"
            )
        return
    if args.footprint:
        print(f"{args.pages} pages of {FOOTPRINT_PAGE_SIZE} per listing, ulimit -n {args.nofile}")
        for tokens in args.tokens:
            got = footprint(tokens, args.pages, args.nofile)
            expected = tokens * 2 * args.pages * FOOTPRINT_PAGE_SIZE
            print(
                f"K={tokens:>5} tokens: peak RSS {got['rss'] / 1024:6.1f} MiB  "
                f"peak open files {got['fds']:>4}  exit {got['code']}  "
                f"records {got['records']}/{expected}"
            )
        return
    print(f"pages per bot: {args.pages} ({PAGE_SIZE} records each); settings: {settings}")
    for latency in args.latency:
        base = None
        for tokens in args.tokens:
            figures = run(tokens, latency, args.pages, settings)
            base = base or figures["wall"]
            print(
                f"latency {latency:.1f} s  K={tokens:>2}: wall {figures['wall']:6.1f} s  "
                f"wall(K)/wall(1) {figures['wall'] / base:5.2f}  "
                f"slowest token {figures['rate']:5.1f} req/min, {figures['pages']:5.1f} pages/min "
                f"(after its first minute {figures['steady']:5.1f})  "
                f"429s {figures['throttled']:.0f}"
            )


if __name__ == "__main__":
    main()
