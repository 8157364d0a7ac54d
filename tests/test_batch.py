"""BATCH messages through the CLI: the files hold what RECORD messages would, stream maps and
the catalog's selection included; no STATE covers a record not yet in a file; settings BATCH
cannot honour are refused in one line. Into PostgreSQL: tests/test_batch_e2e.py."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tap_botpenguin.sandbox import WHATSAPP_BOT, ReceivedRequest, Sandbox

from .helpers import (
    ALL_BOTS,
    STREAM_TYPES,
    SyncResult,
    base_config,
    batch_rows,
    batch_settings,
    catalog_selecting,
    run_cli,
)

#: A PII column removed, a filter, and a copy of the stream (an alias of its own).
MAPS = {
    "leads": {"profile": "__NULL__", "__filter__": "status == 'OPEN'"},
    "leads_copy": {"__source__": "leads"},
}


def _by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keyed = {(r["botId"], r["_id"]): r for r in records}
    assert len(keyed) == len(records), "a record sent twice"
    return {f"{bot}/{record_id}": r for (bot, record_id), r in keyed.items()}


def _bookmarks(state: dict[str, Any]) -> dict[tuple[str, str], str]:
    """The bookmark each (stream, bot) has committed."""
    return {
        (stream, partition["context"]["botId"]): partition["replication_key_value"]
        for stream, bookmarks in state.get("bookmarks", {}).items()
        for partition in bookmarks.get("partitions", [])
        if "replication_key_value" in partition
    }


def _run(config: dict[str, Any], tmp_path: Path, name: str, **kwargs: Any) -> SyncResult:
    (tmp_path / name).mkdir()
    result = run_cli(config, tmp_path / name, **kwargs)
    assert result.exit_code == 0, result.stderr
    return result


def test_batch_files_hold_what_record_messages_would(sandbox: Sandbox, tmp_path: Path) -> None:
    config = base_config(sandbox, stream_maps=MAPS)
    catalog = catalog_selecting(config, "leads", lambda name: name != "lastMessage")
    records = _run(config, tmp_path, "records", catalog=catalog)
    batched = _run(
        {**config, "batch_config": batch_settings(tmp_path / "files")},
        tmp_path,
        "batch",
        catalog=catalog,
    )

    assert not [m for m in batched.messages if m["type"] == "RECORD"]
    rows = batch_rows(batched)
    assert set(rows) == set(records.records) == {"leads", "leads_copy", "chats"}
    for stream, expected in records.records.items():
        assert _by_id(rows[stream]) == _by_id(expected), stream
    assert batched.schemas() == records.schemas()
    # What the maps and the selection say, in the files themselves.
    open_leads = [r for r in sandbox.all_records("lead").values() if r["status"] == "OPEN"]
    assert len(rows["leads"]) == len(open_leads)
    assert all("profile" not in r and "lastMessage" not in r for r in rows["leads"])
    assert len(rows["leads_copy"]) == len(sandbox.all_records("lead"))
    assert all("profile" in r and "lastMessage" not in r for r in rows["leads_copy"])
    assert len(rows["chats"]) == len(sandbox.all_records("non-lead"))
    assert _bookmarks(batched.final_state) == _bookmarks(records.final_state)


def test_batch_without_maps_sends_every_record_in_files(sandbox: Sandbox, tmp_path: Path) -> None:
    config = base_config(sandbox, batch_config=batch_settings(tmp_path / "files"))
    result = _run(config, tmp_path, "batch")

    rows = batch_rows(result)
    for stream, kind in STREAM_TYPES.items():
        expected = {f"{bot}/{record_id}" for bot, record_id in sandbox.all_records(kind)}
        assert set(_by_id(rows[stream])) == expected, stream
    # A file per bot listing at least (each bot's records before its state moves).
    batches = [m for m in result.messages if m["type"] == "BATCH"]
    assert len(batches) == sum(
        1 for kind in STREAM_TYPES.values() for bot in ALL_BOTS if sandbox.listing(bot, kind)
    )


def test_a_stopped_batch_run_commits_no_bot_whose_records_are_not_in_files(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGTERM while the second bot's listing hangs: the last STATE commits the first bot, so
    its records must be in files already (the SDK kept them for a file of 10,000 rows)."""
    hanging, release = threading.Event(), threading.Event()

    def hang_the_second_bot(live: Sandbox, request: ReceivedRequest) -> None:
        if request.params.get("botId") == WHATSAPP_BOT:
            hanging.set()
            release.wait(timeout=120)

    sandbox.before_answer = hang_the_second_bot
    config = base_config(
        sandbox, batch_config=batch_settings(tmp_path / "files"), request_timeout=100
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "tap_botpenguin", "--config", str(tmp_path / "config.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hanging.wait(timeout=60), "the second bot's listing was never asked for"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        release.set()

    assert process.returncode == 128 + signal.SIGTERM, err
    result = SyncResult([json.loads(line) for line in out.splitlines() if line.strip()])
    committed = _bookmarks(result.final_state)
    assert committed, "the first bot's listing was read to its end"
    rows = batch_rows(result)
    for stream, bot in committed:
        kind = STREAM_TYPES[stream]
        expected = {record_id for owner, record_id in sandbox.all_records(kind) if owner == bot}
        sent = {r["_id"] for r in rows.get(stream, []) if r["botId"] == bot}
        assert sent == expected, (stream, bot)


@pytest.mark.parametrize(
    ("change", "line"),
    [
        pytest.param(
            {"emit_activate_version_messages": True},
            "`batch_config` cannot be used with `emit_activate_version_messages` (the mirror)",
            id="the mirror",
        ),
        pytest.param(
            {"batch_config": {"storage": {"root": "file:///tmp"}}},
            "`batch_config` needs `encoding.format` (`jsonl`) and `storage.root`",
            id="no encoding",
        ),
        pytest.param(
            {"batch_config": {"encoding": {"format": "jsonl"}}},
            "`batch_config` needs `encoding.format` (`jsonl`) and `storage.root`",
            id="no storage",
        ),
        pytest.param(
            {"batch_config": {"encoding": {"format": "parquet"}, "storage": {"root": "file:///"}}},
            "`batch_config.encoding.format` `parquet` needs pyarrow, which is not installed",
            id="parquet without pyarrow",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed"
            ),
        ),
    ],
)
def test_batch_settings_it_cannot_honour_are_refused_in_one_line(
    sandbox: Sandbox, tmp_path: Path, change: dict[str, Any], line: str
) -> None:
    config = {**base_config(sandbox, batch_config=batch_settings(tmp_path / "files")), **change}

    result = run_cli(config, tmp_path)

    assert result.exit_code == 1
    errors = [text for text in result.stderr.splitlines() if "| ERROR    |" in text]
    assert len(errors) == 2, result.stderr  # the line, then the SDK's "Config validation failed"
    assert line in errors[0]
    assert "Traceback" not in result.stderr
    assert not sandbox.listing_requests()
