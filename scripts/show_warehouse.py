"""Print what landed in the DuckDB warehouse: rows per stream and bot, leads by status."""

from __future__ import annotations

import sys

import duckdb


def main(path: str) -> None:
    with duckdb.connect(path, read_only=True) as db:
        print(f"\nWhat landed in {path} (schema botpenguin):")
        print(f"  {'stream':<7} {'bot':<26} {'rows':>6}  last updatedAt")
        for stream in ("leads", "chats"):
            rows = db.sql(
                f'select botid, count(*), max(updatedat) from botpenguin."{stream}" '
                "group by 1 order by 1"
            ).fetchall()
            for bot_id, count, latest in rows:
                print(f"  {stream:<7} {bot_id:<26} {count:>6}  {latest}")
        print("\n  leads by status:")
        for status, count in db.sql(
            "select coalesce(status, '(none)'), count(*) from botpenguin.leads "
            "group by 1 order by 2 desc, 1"
        ).fetchall():
            print(f"    {status:<12} {count:>6}")


if __name__ == "__main__":
    main(sys.argv[1])
