"""End to end: `meltano run` stopped by SIGTERM, as a scheduler stops a run at its time limit.

Meltano 4.4 answers SIGTERM by sending SIGTERM to the tap and the target at once, then exits
143 ("The process was terminated"). The tap's last STATE reaches no one (the target is
stopping too), so Meltano keeps only what the target handed on before (SDK targets: every 5
minutes of records, at the end of a batch). What the tap guarantees through Meltano: the run
fails, nothing is lost, and the next run completes it; signalled alone, the tap's last STATE
is what Meltano keeps, and the next run resumes from it (docs/failures.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, WHATSAPP_BOT, Sandbox
from tap_botpenguin.sandbox.faults import ReceivedRequest

from .helpers import (
    MELTANO,
    STREAM_TYPES,
    Meltano,
    fresh_bots,
    one_meltano_at_a_time,
    postgres_env,
    requests_per_listing,
)

pytestmark = pytest.mark.e2e
STATE_ID = "dev:tap-botpenguin-to-target-postgres"
#: The page held until the run is stopped: the second bot's chats, after the first bot's.
HELD = (WHATSAPP_BOT, "non-lead", "2")


def _loaded(pg: psycopg.Connection, schema: str, stream: str) -> Counter[tuple[str, str]]:
    rows = pg.execute(f'select "botId", "_id" from "{schema}"."{stream}"').fetchall()
    return Counter((bot, record_id) for bot, record_id in rows)


class _Held:
    """Holds the answer to one page until released: the run is mid-listing, on the network."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()

    def __call__(self, _: Sandbox, request: ReceivedRequest) -> None:
        params = request.params
        if (params.get("botId"), params.get("type"), params.get("page")) == HELD:
            self.asked.set()
            self.release.wait(120)


def _tap_pid(group: int) -> int:
    """The tap's process in Meltano's process group `group` (`/proc`, Linux)."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group and any(
            part.endswith(b"bin/tap-botpenguin") for part in command
        ):
            return int(entry.name)
    pytest.fail("no tap-botpenguin process under meltano")


def _stopped(meltano: Meltano, held: _Held, *, to: str) -> tuple[int, str]:
    """`meltano run` into PostgreSQL, sent SIGTERM while the tap waits on the held page (to
    Meltano, its process group, or the tap); its exit code and stderr."""
    command = [str(MELTANO), "run", "tap-botpenguin", "target-postgres"]
    with one_meltano_at_a_time(meltano.cwd):
        run = subprocess.Popen(
            command,
            cwd=meltano.cwd,
            env=meltano.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a scheduler starts it
        )
        try:
            assert held.asked.wait(120), "the tap never asked for the held page"
            if to == "process group":
                os.killpg(run.pid, signal.SIGTERM)
            elif to == "tap":
                os.kill(_tap_pid(run.pid), signal.SIGTERM)
            else:
                run.send_signal(signal.SIGTERM)
            _, stderr = run.communicate(timeout=120)
        finally:
            held.release.set()
            if run.poll() is None:
                run.kill()
    return run.returncode, stderr


@pytest.mark.parametrize("to", ["meltano", "process group"])
def test_a_stopped_meltano_run_fails_and_the_next_run_loads_everything(
    pg: psycopg.Connection, schema: str, tmp_path: Path, to: str
) -> None:
    held = _Held()
    with Sandbox(bots=fresh_bots(), rate_limit=None, before_answer=held) as sandbox:
        meltano = Meltano(tmp_path, sandbox, **postgres_env(schema))

        code, stderr = _stopped(meltano, held, to=to)

        assert code == 143, stderr[-3000:]  # a scheduler records a failure
        assert "The process was terminated" in stderr
        assert "stopped by SIGTERM: the last STATE covers every record sent" in stderr
        assert "Traceback" not in stderr

        meltano.run("run", "tap-botpenguin", "target-postgres")

        for stream, kind in STREAM_TYPES.items():
            assert _loaded(pg, schema, stream) == Counter(sandbox.all_records(kind).keys())


def test_a_tap_stopped_under_meltano_fails_the_run_and_meltano_keeps_its_last_state(
    pg: psycopg.Connection, schema: str, tmp_path: Path
) -> None:
    """SIGTERM to the tap alone: the target reads its last STATE, and Meltano keeps it."""
    held = _Held()
    with Sandbox(bots=fresh_bots(), rate_limit=None, before_answer=held) as sandbox:
        meltano = Meltano(tmp_path, sandbox, **postgres_env(schema))

        code, stderr = _stopped(meltano, held, to="tap")

        assert code == 1, stderr[-3000:]
        assert "Extractor failed" in stderr
        assert "stopped by SIGTERM: the last STATE covers every record sent" in stderr
        partitions = meltano.state_partitions(STATE_ID)
        assert "replication_key_value" in partitions[("chats", WEBSITE_BOT)]
        assert "replication_key_value" not in partitions[("chats", WHATSAPP_BOT)]

        before = len(sandbox.listing_requests())
        meltano.run("run", "tap-botpenguin", "target-postgres")

        again = requests_per_listing(sandbox, since=before)
        assert again[(WEBSITE_BOT, "non-lead")] == 1  # resumed: read to its bookmark only
        assert again[(WHATSAPP_BOT, "non-lead")] == sandbox.pages(WHATSAPP_BOT, "non-lead") + 1
        for stream, kind in STREAM_TYPES.items():
            assert _loaded(pg, schema, stream) == Counter(sandbox.all_records(kind).keys())
