"""The same work as the tap, written by hand: the floor the tap is measured against.

`requests` + `json.loads` per page + `json.dumps` of a Singer RECORD line per record to stdout.
Usage: python benchmarks/baseline.py URL TOKEN CUSTOMER_ID BOT_ID
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import requests


def main(url: str, token: str, customer_id: str, bot_id: str) -> None:
    session = requests.Session()
    out = sys.stdout
    for kind, stream in (("lead", "leads"), ("non-lead", "chats")):
        page = 1
        while True:
            response = session.get(
                f"{url}/inbox/direct/chats",
                params={"botId": bot_id, "customerId": customer_id, "page": page, "type": kind},
                headers={"x-bot-token": token, "Content-Type": "application/json"},
                timeout=60,
            )
            response.raise_for_status()
            data = json.loads(response.content)["data"]
            if not data:
                break
            now = datetime.now(timezone.utc).isoformat()
            for record in data:
                message = {
                    "type": "RECORD",
                    "stream": stream,
                    "record": record,
                    "time_extracted": now,
                }
                out.write(json.dumps(message) + "\n")
            page += 1
    out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:5])
