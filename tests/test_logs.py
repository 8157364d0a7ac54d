"""What a run prints: a healthy one says per bot and stream what it did, and nothing else;
warnings are kept for what a person should act on; DEBUG brings the detail back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tap_botpenguin.sandbox import WEBSITE_BOT, Fault, Sandbox

from .helpers import (
    ALL_BOTS,
    STREAM_TYPES,
    Meltano,
    base_config,
    fresh_bots,
    run_cli,
)

LISTINGS = len(ALL_BOTS) * len(STREAM_TYPES)


def _levels(stderr: str) -> list[str]:
    """The level of each line of the SDK's console format (`time | LEVEL | logger | text`)."""
    return [line.split("|")[1].strip() for line in stderr.splitlines() if line.count("|") >= 3]


def test_a_healthy_run_prints_two_lines_per_bot_and_stream_and_no_warning(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli(base_config(sandbox), tmp_path)

    assert result.exit_code == 0, result.stderr
    assert set(_levels(result.stderr)) == {"INFO"}
    assert "METRIC" not in result.stderr
    assert "unsorted" not in result.stderr
    for bot_id in ALL_BOTS:
        for stream in STREAM_TYPES:
            assert result.stderr.count(f"| {stream} bot {bot_id}: full scan (") == 1
            assert result.stderr.count(f"| done {stream} bot {bot_id}: full scan (") == 1
    assert "Skipping parse of env var settings" not in result.stderr
    # One line for the whole run, last.
    records = sum(len(records) for records in result.records.values())
    requests = len(sandbox.listing_requests())
    last = result.stderr.splitlines()[-1]
    assert f"| run total: {LISTINGS} listings (0 set aside); emitted {records}, " in last
    assert f"requests {requests}, waited 0.0 s, took " in last
    # Those, and the SDK's start-up line (name and versions).
    assert len(result.stderr.splitlines()) == 2 * LISTINGS + 2
    assert "tap-botpenguin v" in result.stderr.splitlines()[0]


def test_a_faulty_run_still_shows_its_warnings(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.inject(Fault("status", status=500, bot_id=WEBSITE_BOT, type="lead", page=2))

    result = run_cli(base_config(sandbox), tmp_path)

    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "| WARNING  |" in line]
    assert len(warnings) == 1
    assert "page 2 for leads" in warnings[0]
    assert "500 Internal Server Error" in warnings[0]
    assert "retrying in 1.0 s (attempt 1 of 3)" in warnings[0]


def test_metrics_follow_the_users_logging_configuration(sandbox: Sandbox, tmp_path: Path) -> None:
    """SINGER_SDK_LOG_CONFIG, the SDK's documented way, asks for METRIC lines at INFO."""
    log_config = tmp_path / "logging.yaml"
    log_config.write_text(
        "version: 1\n"
        "disable_existing_loggers: false\n"
        "handlers:\n"
        "  metrics: {class: logging.StreamHandler, stream: ext://sys.stderr}\n"
        "loggers:\n"
        "  singer_sdk.metrics: {level: INFO, handlers: [metrics], propagate: false}\n"
    )
    result = run_cli(base_config(sandbox), tmp_path, env={"SINGER_SDK_LOG_CONFIG": str(log_config)})

    assert result.exit_code == 0, result.stderr
    durations = [line for line in result.stderr.splitlines() if '"http_request_duration"' in line]
    assert len(durations) == len(sandbox.listing_requests())


def test_debug_brings_back_metrics_and_the_sdk_detail(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(base_config(sandbox), tmp_path, env={"TAP_BOTPENGUIN_LOGLEVEL": "debug"})

    assert result.exit_code == 0, result.stderr
    metrics = [line for line in result.stderr.splitlines() if "METRIC" in line]
    assert sum('"http_request_duration"' in line for line in metrics) == len(
        sandbox.listing_requests()
    )
    assert "Stream is assumed to be unsorted" in result.stderr


@pytest.mark.e2e
def test_a_healthy_meltano_run_prints_no_tap_warning_or_metric(tmp_path: Path) -> None:
    out = tmp_path / "jsonl"
    out.mkdir()
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox, TARGET_JSONL_DESTINATION_PATH=str(out))
        done = meltano.run("run", "tap-botpenguin", "target-jsonl")

    tap_lines = [line for line in done.stderr.splitlines() if "] tap-botpenguin " in line]
    assert tap_lines
    assert all(line.split("]")[0].endswith("[info     ") for line in tap_lines), tap_lines
    assert not [line for line in tap_lines if "METRIC" in line]
    assert sum(" done " in line for line in tap_lines) == LISTINGS
