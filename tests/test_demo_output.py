"""What the demo shows on screen when a plugin fails: why, with the full output in last-run.log."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.demo_output import shown

from .helpers import run_script

# A target that failed, as Meltano 4.4 logs it: the traceback at [info], then "Loader failed".
FAILED_LOAD = """\
2026-11-29T15:48:28Z [info     ] meltano      Using systemdb state backend
2026-11-29T15:48:28Z [warning  ] meltano      No state was found, complete import.
2026-11-29T15:48:30Z [info     ] tap-botpenguin leads bot 1: full scan (no bookmark yet)
2026-11-29T15:48:30Z [info     ] tap-botpenguin WARNING the API sent fields it does not document
2026-11-29T15:48:31Z [info     ] target-duckdb Loading 235 rows into '"w"."botpenguin"."leads"'
2026-11-29T15:48:31Z [info     ] target-duckdb Traceback (most recent call last):
2026-11-29T15:48:31Z [info     ] target-duckdb   File "target_duckdb/db_sync.py", line 375
2026-11-29T15:48:31Z [info     ] target-duckdb     cur.execute(self.create_table_query())
2026-11-29T15:48:31Z [info     ] target-duckdb duckdb.CatalogException: Catalog Error: Column st
2026-11-29T15:48:31Z [error    ] meltano      Loader failed
2026-11-29T15:48:31Z [error    ] meltano      Block run completed
""".splitlines(keepends=True)


def _messages(lines: list[str]) -> list[str]:
    return [line.split("] ", 1)[1].strip() for line in lines]


def test_a_failed_loader_shows_its_last_lines_before_meltano_says_so() -> None:
    assert _messages(list(shown(FAILED_LOAD))) == [
        "tap-botpenguin leads bot 1: full scan (no bookmark yet)",
        "tap-botpenguin WARNING the API sent fields it does not document",
        'target-duckdb Loading 235 rows into \'"w"."botpenguin"."leads"\'',
        "target-duckdb Traceback (most recent call last):",
        'target-duckdb   File "target_duckdb/db_sync.py", line 375',
        "target-duckdb     cur.execute(self.create_table_query())",
        "target-duckdb duckdb.CatalogException: Catalog Error: Column st",
        "meltano      Loader failed",
        "meltano      Block run completed",
    ]


def test_a_loader_that_worked_shows_nothing_of_its_own() -> None:
    healthy = [line for line in FAILED_LOAD if "[error" not in line]
    healthy.append("2026-11-29T15:48:31Z [info     ] meltano      Block run completed\n")
    assert _messages(list(shown(healthy))) == [
        "tap-botpenguin leads bot 1: full scan (no bookmark yet)",
        "tap-botpenguin WARNING the API sent fields it does not document",
    ]


def test_a_failed_extractor_does_not_show_the_loaders_lines() -> None:
    lines = [line.replace("Loader failed", "Extractor failed") for line in FAILED_LOAD]
    assert not any("target-duckdb" in line for line in shown(lines))


def test_only_the_last_lines_of_a_long_output_are_kept() -> None:
    noise = [f"2026-11-29T15:48:30Z [info     ] target-duckdb routine {n}\n" for n in range(500)]
    lines = [*noise, *FAILED_LOAD]
    on_screen = list(shown(lines))
    assert "routine 0\n" not in "".join(on_screen)
    assert len(on_screen) < 50
    assert any("Catalog Error" in line for line in on_screen)


@pytest.mark.e2e
def test_a_loader_failure_shows_why_on_screen(tmp_path: Path) -> None:
    """A real `meltano run` whose target-duckdb cannot open the warehouse file."""
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "sandbox.duckdb").write_text("not a DuckDB database\n")

    run = run_script(tmp_path, "demo.sh")

    assert run.returncode != 0
    assert "is not a valid DuckDB database file" in run.stderr, run.stderr[-3000:]
    assert "target-duckdb Traceback (most recent call last):" in run.stderr
    if "Loader failed" in run.stderr:  # Meltano may also crash itself (see the test above)
        assert run.stderr.index("not a valid DuckDB") < run.stderr.index("Loader failed")
    assert "last-run.log" in run.stderr
    assert "This run loaded" not in run.stdout


@pytest.mark.e2e
def test_a_dbt_failure_shows_its_error_lines_on_screen(tmp_path: Path) -> None:
    # dbt looks for the raw tables where the target did not load them.
    run = run_script(tmp_path, "demo.sh", DBT_DUCKDB_SOURCE_SCHEMA="nowhere")

    assert run.returncode != 0
    assert '"nowhere"."leads" does not exist or has no columns' in run.stderr
    assert "meltano config set dbt-<adapter> source_schema" in run.stderr
    assert "ERROR creating sql view model analytics.stg_botpenguin__leads" in run.stderr
    assert "Done. PASS=0 WARN=0 ERROR=2" in run.stderr
    assert "tap-botpenguin done chats bot" in run.stderr  # the tap's own lines too
    assert " SKIP " not in run.stderr  # the other 34 nodes' lines are in the log only
    assert "target-duckdb" not in run.stderr  # the loader worked: none of its lines
    assert "last-run.log" in run.stderr
    log = (tmp_path / "output" / "last-run.log").read_text()
    assert " SKIP test unique_botpenguin__conversations_conversation_id" in log
    assert "This run loaded" not in run.stdout  # no summary of marts that were not built


def test_a_command_that_crashed_shows_its_last_lines() -> None:
    """dbt ends with a traceback and no report; Meltano only ends the block with an error."""
    loaded = [line for line in FAILED_LOAD if "[error" not in line and "Traceback" not in line]
    lines = [
        *loaded,
        "2026-11-29T15:48:32Z [info     ] meltano      Block run completed\n",
        "2026-11-29T15:48:33Z [info     ] dbt-duckdb   Running with dbt=1.11.0\n",
        "2026-11-29T15:48:33Z [info     ] dbt-duckdb   ModuleNotFoundError: No module named 'x'\n",
        "2026-11-29T15:48:34Z [error    ] meltano      Block run completed\n",
    ]
    assert _messages(list(shown(lines)))[2:] == [
        "dbt-duckdb   Running with dbt=1.11.0",
        "dbt-duckdb   ModuleNotFoundError: No module named 'x'",
        "meltano      Block run completed",
    ]


def test_when_meltano_itself_crashes_mid_block_the_loaders_last_lines_still_show() -> None:
    """Meltano 4 can die of a BrokenPipeError when a loader fails under a writing tap: no
    `Loader failed`, no block end; its traceback, then the output ends."""
    crashed = [
        *FAILED_LOAD[:9],
        "2026-11-29T15:48:31Z [info     ] meltano      Traceback (most recent call last):\n",
        "BrokenPipeError\n",
    ]
    on_screen = list(shown(crashed))
    assert _messages(on_screen[-2:]) == [
        "target-duckdb     cur.execute(self.create_table_query())",
        "target-duckdb duckdb.CatalogException: Catalog Error: Column st",
    ]
    assert not any("Using systemdb" in line for line in on_screen)


def test_a_failed_loaders_lines_that_arrive_after_meltanos_line_still_show() -> None:
    failed_first = [*FAILED_LOAD[:5], FAILED_LOAD[9], *FAILED_LOAD[5:9], FAILED_LOAD[10]]
    on_screen = _messages(list(shown(failed_first)))
    assert on_screen[-3:] == [
        "target-duckdb     cur.execute(self.create_table_query())",
        "target-duckdb duckdb.CatalogException: Catalog Error: Column st",
        "meltano      Block run completed",
    ]
    assert "meltano      Loader failed" in on_screen
