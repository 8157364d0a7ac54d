"""Settings: validation before any request, --about/--discover without config, env vars."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tap_botpenguin.sandbox import SANDBOX_CUSTOMER, SANDBOX_TOKEN, WEBSITE_BOT, Sandbox
from tap_botpenguin.streams.settings_schema import SETTING_NAMES

from .helpers import ROOT, base_config, run_cli


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"bots": None}, "`bot_id` (one bot) or `bots`"),
        ({"bot_token": None}, "`bot_token` is required"),
        ({"customer_id": None}, "`customer_id` is required"),
        (
            {"bots": [{"bot_id": WEBSITE_BOT}, {"bot_id": WEBSITE_BOT}]},
            f"bot {WEBSITE_BOT} more than once",
        ),
        ({"bot_id": WEBSITE_BOT}, f"bot {WEBSITE_BOT} more than once"),
        ({"api_url": "ftp://example.com"}, "`api_url` must be an http(s) URL"),
        ({"start_date": "last tuesday"}, "`start_date` must be an ISO 8601 date-time"),
        ({"requests_per_minute": 0}, "config['requests_per_minute']"),
        ({"request_timeout": 0}, "config['request_timeout']"),
        ({"max_retries": 0}, "config['max_retries']"),
        ({"auth_method": "basic"}, "config['auth_method']"),
        ({"scan_mode": "sometimes"}, "config['scan_mode']"),
        ({"full_scan_every_hours": -1}, "config['full_scan_every_hours']"),
        ({"bots": [{"bot_id": WEBSITE_BOT, "bot_tokn": "typo"}]}, "config['bots'][0]"),
    ],
)
def test_bad_settings_fail_before_any_request_naming_the_setting(
    sandbox: Sandbox, tmp_path: Path, change: dict, named: str
) -> None:
    config = {k: v for k, v in {**base_config(sandbox), **change}.items() if v is not None}

    result = run_cli(config, tmp_path)

    assert result.exit_code == 1
    assert named in result.stderr
    assert sandbox.listing_requests() == []
    assert result.stdout == ""


def test_every_bot_may_bring_its_own_token_and_customer(sandbox: Sandbox, tmp_path: Path) -> None:
    config = base_config(sandbox)
    del config["bot_token"], config["customer_id"]
    config["bots"] = [
        {"bot_id": WEBSITE_BOT, "bot_token": SANDBOX_TOKEN, "customer_id": SANDBOX_CUSTOMER}
    ]

    result = run_cli(config, tmp_path)

    assert result.exit_code == 0, result.stderr
    assert len(result.records["leads"]) == 180


@pytest.mark.parametrize("flag", [["--about"], ["--about", "--format=json"], ["--discover"]])
def test_about_and_discover_need_no_config(tmp_path: Path, flag: list[str]) -> None:
    result = run_cli(None, tmp_path, args=flag)

    assert result.exit_code == 0, result.stderr
    if flag == ["--discover"]:
        catalog = json.loads(result.stdout)
        streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
        assert set(streams) == {"leads", "chats"}
        for stream in streams.values():
            assert stream["key_properties"] == ["_id"]
            assert stream["replication_key"] == "updatedAt"
            assert stream["schema"]["properties"]["updatedAt"]["format"] == "date-time"


def test_settings_load_from_the_environment(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {
        "TAP_BOTPENGUIN_BOT_TOKEN": SANDBOX_TOKEN,
        "TAP_BOTPENGUIN_CUSTOMER_ID": SANDBOX_CUSTOMER,
        "TAP_BOTPENGUIN_BOTS": json.dumps([{"bot_id": WEBSITE_BOT}]),
        "TAP_BOTPENGUIN_API_URL": sandbox.url,
        "TAP_BOTPENGUIN_REQUEST_TIMEOUT": "7.5",
        "TAP_BOTPENGUIN_REQUESTS_PER_MINUTE": "90",
        "TAP_BOTPENGUIN_FULL_SCAN_EVERY_HOURS": "0.0",
    }

    result = run_cli(None, tmp_path, args=["--config=ENV"], env=env)

    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for m in records if m["type"] == "RECORD" and m["stream"] == "leads") == 180
    assert f"leads bot {WEBSITE_BOT}: full scan (full_scan_every_hours=0)" in result.stderr
    state = next(m["value"] for m in reversed(records) if m["type"] == "STATE")

    del env["TAP_BOTPENGUIN_FULL_SCAN_EVERY_HOURS"]
    env["TAP_BOTPENGUIN_SCAN_MODE"] = "full"
    again = run_cli(None, tmp_path, state=state, args=["--config=ENV"], env=env)

    assert again.exit_code == 0, again.stderr
    line = "reading to the end (scan_mode=full; next full scan in 24 h)"
    assert f"leads bot {WEBSITE_BOT}: {line}" in again.stderr


def _settings_rows(markdown: str) -> list[str]:
    section = markdown.split("## Settings", 1)[1]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_readme_settings_table_matches_about() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (ROOT / "README.md").read_text()
    generated = _settings_rows(about)
    assert generated
    block = re.search(r"<!-- settings:start -->(.*?)<!-- settings:end -->", readme, re.S)
    assert block, "README.md lacks the settings block"
    documented = [line for line in block.group(1).splitlines() if line.startswith("|")]
    # The tap's own settings word for word; the SDK's built-in ones (stream maps, batch, ...)
    # by name, since each SDK release rewords their descriptions.
    ours = 2 + len(SETTING_NAMES)  # header, delimiter, rows
    assert documented[:ours] == generated[:ours]
    assert [_name(line) for line in documented[ours:]] == [_name(line) for line in generated[ours:]]


def _name(row: str) -> str:
    return row.split("|")[1].strip()


def test_the_readme_settings_table_renders_as_a_table() -> None:
    """GitHub renders GFM: without its delimiter row the table is a paragraph of pipes."""
    tokens = MarkdownIt("commonmark").enable("table").parse((ROOT / "README.md").read_text())
    tables, cells, row, in_header = [], [], [], False
    for token in tokens:
        if token.type == "table_open":
            cells = []
        elif token.type in ("thead_open", "thead_close"):
            in_header = token.type == "thead_open"
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content)
        elif token.type == "tr_close":
            cells.append((in_header, row))
        elif token.type == "table_close":
            tables.append(cells)
    settings = [
        t for t in tables if t and t[0] == (True, ["Setting", "Required", "Default", "Description"])
    ]
    assert settings, "README.md has no rendered settings table"
    names = [row[0] for header, row in settings[0] if not header]
    # Every setting of the tap, in its order, then the SDK's own (stream maps, batch, ...).
    ours = list(SETTING_NAMES)
    assert names[: len(ours)] == ours
    assert "stream_maps" in names[len(ours) :]


EMPTY_IN_MELTANO_YML = {
    name: None
    for name in (
        "requests_per_minute",
        "max_parallel_tokens",
        "pages_in_flight",
        "request_timeout",
        "max_retries",
        "full_scan_every_hours",
        "max_undocumented_columns",
        "undocumented_fields",
        "scan_mode",
        "snake_case_fields",
    )
}


def test_settings_left_empty_take_their_defaults(sandbox: Sandbox, tmp_path: Path) -> None:
    """An empty value in meltano.yml or the environment arrives as null: the default."""
    usual = run_cli(base_config(sandbox), tmp_path)
    empty = run_cli({**base_config(sandbox), **EMPTY_IN_MELTANO_YML}, tmp_path)

    assert empty.exit_code == 0, empty.stderr
    assert "Traceback" not in empty.stderr
    assert len(empty.records["leads"]) == len(usual.records["leads"]) > 0
    assert len(empty.records["chats"]) == len(usual.records["chats"]) > 0


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        (
            "request_timeout",
            "inf",
            "`request_timeout` must be a number of seconds up to 3600, got inf.",
        ),
        (
            "request_timeout",
            "nan",
            "`request_timeout` must be a number of seconds up to 3600, got nan.",
        ),
        (
            "request_timeout",
            1e12,
            "`request_timeout` must be a number of seconds up to 3600, got 1e+12.",
        ),
        (
            "full_scan_every_hours",
            "nan",
            "`full_scan_every_hours` must be a number of hours up to 8784, got nan.",
        ),
        (
            "full_scan_every_hours",
            "1e9",
            "`full_scan_every_hours` must be a number of hours up to 8784, got 1e+09.",
        ),
    ],
)
def test_special_numbers_are_refused_in_one_line(
    sandbox: Sandbox, tmp_path: Path, setting: str, value: object, line: str
) -> None:
    """`inf` overflowed the request deadline, `nan` switched periodic full scans off."""
    result = run_cli(base_config(sandbox, **{setting: value}), tmp_path)

    assert result.exit_code == 1
    assert line in result.stderr
    assert "Traceback" not in result.stderr
    assert not sandbox.listing_requests()


def test_a_bots_entry_with_an_empty_bot_id_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    """It was accepted, then set aside as "chats (bot )" after its requests failed."""
    bots = [{"bot_id": WEBSITE_BOT}, {"bot_id": "  "}]
    result = run_cli(base_config(sandbox, bots=bots), tmp_path)

    assert result.exit_code == 1
    assert "`bots` entry 2 has an empty `bot_id`." in result.stderr
    assert "Traceback" not in result.stderr
    assert not sandbox.listing_requests()
