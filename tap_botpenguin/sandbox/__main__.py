"""`python -m tap_botpenguin.sandbox`: run the BotPenguin sandbox until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from tap_botpenguin.sandbox.data import ACCOUNTS, SHAPES, agency_bots, default_bots
from tap_botpenguin.sandbox.faults import PAST_END
from tap_botpenguin.sandbox.inbox import ORDERS
from tap_botpenguin.sandbox.server import Sandbox, serve
from tap_botpenguin.sandbox.undocumented import add_undocumented_fields


def main(argv: list[str] | None = None) -> None:
    """Parse options, start the sandbox, print how to point the tap at it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=25)
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window per token")
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds")
    parser.add_argument("--scale", type=int, default=1, help="multiply every inbox's size")
    parser.add_argument("--order", choices=ORDERS, default="updated", help="listing sort order")
    parser.add_argument(
        "--past-end", choices=PAST_END, default="empty", help="the answer past the last page"
    )
    parser.add_argument(
        "--undocumented-fields",
        action="store_true",
        help="records also carry fields the API does not document, one of each JSON type",
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="documented",
        help="records as documented, as BotPenguin really sends them, both on every page, "
        "or one bot of each (demo)",
    )
    parser.add_argument(
        "--account",
        choices=ACCOUNTS,
        default="demo",
        help="the demo's one customer (three bots, one token) or an agency's two customers "
        "(two bots and a token each: shards)",
    )
    parser.add_argument("--url-file", type=Path, help="write the base URL here once listening")
    args = parser.parse_args(argv)

    make_bots = agency_bots if args.account == "agency" else default_bots
    bots = make_bots(args.scale, shape=args.shape)
    if args.undocumented_fields:
        add_undocumented_fields(bots)
    sandbox = Sandbox(
        bots=bots,
        page_size=args.page_size,
        order=args.order,
        past_end=args.past_end,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        port=args.port,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def announce(url: str) -> None:
        print(f"BotPenguin sandbox on {url}", flush=True)
        for bot in bots:
            print(
                f"  token: {bot.token}  customer_id: {bot.customer_id}  bot_id: {bot.bot_id}"
                f"  leads: {len(bot.leads)}  chats: {len(bot.chats)}",
                flush=True,
            )
        if args.url_file:
            args.url_file.write_text(url)

    with contextlib.suppress(KeyboardInterrupt):
        serve(sandbox, announce=[announce])


if __name__ == "__main__":
    main()
