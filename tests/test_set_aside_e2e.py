"""End to end: a listing set aside in `meltano run` into PostgreSQL; the rest is loaded.

The run fails (a scheduler alerts), yet every other bot's records are in the tables, and the
next run, once the API answers again, completes what was missing without duplicates.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Fault, Sandbox

from .helpers import STREAM_TYPES, Meltano, fresh_bots, postgres_env, requests_per_listing

pytestmark = pytest.mark.e2e
STATE_ID = "dev:tap-botpenguin-to-target-postgres"


def _loaded(pg: psycopg.Connection, schema: str, stream: str) -> Counter[tuple[str, str]]:
    rows = pg.execute(f'select "botId", "_id" from "{schema}"."{stream}"').fetchall()
    return Counter((bot, record_id) for bot, record_id in rows)


def test_a_listing_set_aside_fails_the_run_and_the_rest_is_loaded(
    pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        page_2 = {"bot_id": WHATSAPP_BOT, "type": "lead", "page": 2}
        sandbox.inject(Fault("status", status=503, times=None, **page_2))
        meltano = Meltano(tmp_path, sandbox, **postgres_env(schema), TAP_BOTPENGUIN_MAX_RETRIES="2")

        failed = meltano.run("run", "tap-botpenguin", "target-postgres", expect_success=False)

        assert f"leads (bot {WHATSAPP_BOT}) set aside, its state unchanged" in failed.stderr
        chats = _loaded(pg, schema, "chats")
        assert chats == Counter(sandbox.all_records("non-lead").keys())
        leads = _loaded(pg, schema, "leads")
        expected = Counter(sandbox.all_records("lead").keys())
        assert {k: n for k, n in leads.items() if k[0] == WEBSITE_BOT} == {
            k: n for k, n in expected.items() if k[0] == WEBSITE_BOT
        }
        # The failed listing's first page was emitted before page 2 failed.
        assert sum(1 for bot, _ in leads if bot == WHATSAPP_BOT) == len(
            sandbox.page(WHATSAPP_BOT, "lead", 1)
        )

        # Meltano kept the failed run's STATE: bookmarks for the rest, none for the failed one.
        partitions = meltano.state_partitions(STATE_ID)
        assert "replication_key_value" in partitions[("leads", WEBSITE_BOT)]
        assert "replication_key_value" in partitions[("chats", WHATSAPP_BOT)]
        assert "replication_key_value" not in partitions[("leads", WHATSAPP_BOT)]

        sandbox.faults.clear()
        before = len(sandbox.listing_requests())
        meltano.run("run", "tap-botpenguin", "target-postgres")

        for stream, kind in STREAM_TYPES.items():
            assert _loaded(pg, schema, stream) == Counter(sandbox.all_records(kind).keys())
        # From that state: the failed listing read in full, the others one page each.
        again = requests_per_listing(sandbox, since=before)
        assert again[(WHATSAPP_BOT, "lead")] == sandbox.pages(WHATSAPP_BOT, "lead") + 1
        assert again[(WEBSITE_BOT, "lead")] == 1
