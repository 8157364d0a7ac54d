"""The demo's closing summary: what this run loaded (from its log), then the analytics marts.

Usage: python scripts/show_warehouse.py WAREHOUSE.duckdb RUN.log
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import duckdb

#: The tap's closing line per bot and stream (tap_botpenguin/progress.py).
DONE = re.compile(
    r"done (?P<stream>\w+) bot (?P<bot>\S+): (?P<kind>.+?); read \d+, emitted (?P<emitted>\d+)"
)


def this_run(log: Path) -> None:
    emitted: dict[str, int] = defaultdict(int)
    kinds: dict[str, list[str]] = defaultdict(list)
    for match in DONE.finditer(log.read_text(encoding="utf-8", errors="replace")):
        emitted[match["stream"]] += int(match["emitted"])
        kinds[match["stream"]].append(match["kind"])
    print("\nThis run loaded:")
    for stream in sorted(emitted):
        full = sum(kind.startswith("full scan") for kind in kinds[stream])
        how = "incremental" if full < len(kinds[stream]) else "full"
        print(
            f"  {stream:<6} {emitted[stream]:>6} rows  {how}: of {len(kinds[stream])} bots, "
            f"{len(kinds[stream]) - full} read until past their bookmark, {full} in full"
        )


def marts(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        print("\nConversations per bot and type (analytics.botpenguin__conversations):")
        rows = db.sql(
            "select bot_id, count(*) filter (where conversation_type = 'lead'), "
            "count(*) filter (where conversation_type = 'chat'), count(*) "
            "from analytics.botpenguin__conversations group by 1 order by 1"
        ).fetchall()
        print(f"  {'bot':<26} {'leads':>6} {'chats':>6} {'total':>6}")
        for bot_id, leads, chats, total in rows:
            print(f"  {bot_id:<26} {leads:>6} {chats:>6} {total:>6}")
        print("\nConversations per channel (analytics.botpenguin__conversations):")
        print(f"  {'channel':<12} {'leads':>6} {'chats':>6} {'total':>6}")
        for channel, leads, chats, total in db.sql(
            "select channel, count(*) filter (where conversation_type = 'lead'), "
            "count(*) filter (where conversation_type = 'chat'), count(*) "
            "from analytics.botpenguin__conversations group by 1 order by 4 desc, 1"
        ).fetchall():
            print(f"  {channel:<12} {leads:>6} {chats:>6} {total:>6}")
        print("\nLeads by status:")
        for status, count in db.sql(
            "select coalesce(status, '(none)'), count(*) from analytics.botpenguin__conversations "
            "where conversation_type = 'lead' group by 1 order by 2 desc, 1"
        ).fetchall():
            print(f"  {status:<12} {count:>6}")
        print("\nLast 7 days with conversations (analytics.botpenguin__daily_conversations):")
        print(f"  {'day':<10} {'leads':>6} {'chats':>6} {'with email':>11}")
        for day, leads, chats, with_email in db.sql(
            "select day, sum(conversations) filter (where conversation_type = 'lead'), "
            "sum(conversations) filter (where conversation_type = 'chat'), sum(with_email) "
            "from analytics.botpenguin__daily_conversations where day is not null "
            "group by 1 order by 1 desc limit 7"
        ).fetchall():
            print(f"  {day!s:<10} {leads or 0:>6} {chats or 0:>6} {with_email:>11}")


if __name__ == "__main__":
    this_run(Path(sys.argv[2]))
    marts(Path(sys.argv[1]))
