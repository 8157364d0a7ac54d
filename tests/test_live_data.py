"""A live inbox: conversations arrive, move and close while the tap pages through it.

Sync 1 runs during the churn, sync 2 afterwards with sync 1's final state. Every record that
exists at the end must have been emitted with its latest `updatedAt` by one of them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from tap_botpenguin.sandbox import Sandbox

from .conftest import ALL_BOTS, STREAM_TYPES, base_config, fresh_bots, run_in_process


def churn(seed: int) -> Callable[[Sandbox], None]:
    """Before each request: new chats at the top, updates (moving up, or in place, as an API
    sorted by something else would), some chats closing. Each request is one second later."""
    rng = random.Random(seed)
    clock = [datetime.now(timezone.utc)]

    def change(server: Sandbox) -> None:
        clock[0] += timedelta(seconds=1)
        at = clock[0]
        for bot_id in ALL_BOTS:
            for kind in STREAM_TYPES.values():
                size = len(server.bot(bot_id).inbox(kind))
                if rng.random() < 0.3:
                    server.add(bot_id, kind, rng.randint(1, 3), seed=f"churn{seed}", at=at)
                if size and rng.random() < 0.4:
                    picked = rng.sample(range(size), min(size, rng.randint(1, 3)))
                    server.move_to_top(bot_id, kind, picked, at=at)
                if size and rng.random() < 0.3:
                    server.update_in_place(bot_id, kind, [rng.randrange(size)], at=at)
                if size and rng.random() < 0.2:
                    server.move_to_top(bot_id, kind, [rng.randrange(size)], status="CLOSED", at=at)

    return change


@pytest.mark.parametrize("seed", range(8))
def test_nothing_is_lost_while_the_inbox_changes(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as server:
        server.before_request = churn(seed)
        with caplog.at_level(logging.INFO):
            first = run_in_process(base_config(server))
        server.before_request = None
        second = run_in_process(base_config(server), state=first.final_state)

        assert first.error is None
        assert second.error is None
        for stream, kind in STREAM_TYPES.items():
            emitted = {
                (r["botId"], r["_id"], r["updatedAt"])
                for result in (first, second)
                for r in result.records.get(stream, [])
            }
            final = {
                (bot, rid, r["updatedAt"]) for (bot, rid), r in server.all_records(kind).items()
            }
            missing = final - emitted
            assert not missing, f"{len(missing)} {stream} lost: {sorted(missing)[:3]}"
        # The churn shifted pages under the reader: the tap saw it and said so.
        assert "appeared on two consecutive pages" in caplog.text
