"""The shards file: what `python -m orchestrate.shards` writes, and what it refuses in one line.

Run as users run it, in a project directory; the runs themselves are in test_shards_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_botpenguin.sandbox import AGENCY_CUSTOMERS
from tap_botpenguin.sandbox.env import agency_settings

from .helpers import ROOT

GOOD: dict[str, Any] = {
    "config": {"requests_per_minute": 90},
    "shards": [
        {
            "name": "customer-a",
            "token_env": "TOKEN_A",
            "customer_id": "cust-a",
            "bots": ["bot-1", "bot-2"],
        },
        {
            "name": "customer-b",
            "token_env": "TOKEN_B",
            "bots": [{"bot_id": "bot-3", "customer_id": "cust-b"}],
        },
    ],
}


#: The repository's meltano.yml: a project as users have it.
PROJECT = (ROOT / "meltano.yml").read_text()


def _shards(
    tmp_path: Path, document: Any, *args: str, meltano_yml: str | None = PROJECT, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m orchestrate.shards <args> shards.yml` in a project whose meltano.yml is
    `meltano_yml` (None: no meltano.yml)."""
    if meltano_yml is not None:
        (tmp_path / "meltano.yml").write_text(meltano_yml)
    path = tmp_path / "shards.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return subprocess.run(
        [sys.executable, "-m", "orchestrate.shards", *args, "shards.yml"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _with(**changes: Any) -> dict[str, Any]:
    """GOOD with its second shard changed."""
    second = {**GOOD["shards"][1], **changes}
    return {**GOOD, "shards": [GOOD["shards"][0], second]}


def test_each_shard_gets_its_own_plugin_namespace_schema_and_dbt_reads_them_all(
    tmp_path: Path,
) -> None:
    done = _shards(tmp_path, GOOD, "write")
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / "shards.meltano.yml").read_text())
    extractors = written["plugins"]["extractors"]
    assert [e["name"] for e in extractors] == [
        "tap-botpenguin--customer-a",
        "tap-botpenguin--customer-b",
    ]
    a, b = extractors
    assert a["inherit_from"] == "tap-botpenguin"
    # Its own env prefix: TAP_BOTPENGUIN_BOT_TOKEN in .env cannot override the shard's token.
    assert a["namespace"] == "tap_botpenguin__customer_a"
    assert (a["load_schema"], b["load_schema"]) == (
        "botpenguin_customer_a",
        "botpenguin_customer_b",
    )
    assert a["config"] == {
        "requests_per_minute": 90,
        "customer_id": "cust-a",
        "bot_token": "${TOKEN_A}",
        "bots": [{"bot_id": "bot-1"}, {"bot_id": "bot-2"}],
        "bot_id": "",  # set, so that the main plugin's bot_id is not inherited
    }
    assert b["config"]["bots"] == [{"bot_id": "bot-3", "customer_id": "cust-b"}]
    utilities = {u["name"]: u for u in written["plugins"]["utilities"]}
    assert utilities["dbt-postgres--shards"]["inherit_from"] == "dbt-postgres"
    for utility in utilities.values():
        assert utility["config"]["source_schema"] == "botpenguin_customer_a,botpenguin_customer_b"
    schemas = _shards(tmp_path, GOOD, "schemas")
    assert schemas.stdout.strip() == "botpenguin_customer_a,botpenguin_customer_b"


def test_the_project_includes_what_the_shards_tool_writes() -> None:
    meltano_yml = yaml.safe_load((ROOT / "meltano.yml").read_text())
    assert "./shards.meltano.yml" in meltano_yml["include_paths"]
    base = meltano_yml["plugins"]["extractors"][0]
    assert (base["name"], base["load_schema"]) == ("tap-botpenguin", "botpenguin")
    for loader in meltano_yml["plugins"]["loaders"]:
        if loader["name"] in {"target-postgres", "target-snowflake", "target-duckdb"}:
            assert loader["config"]["default_target_schema"] == "$MELTANO_EXTRACT__LOAD_SCHEMA"


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (_with(token_env="TOKEN_A"), "shards customer-a and customer-b share token_env TOKEN_A"),
        (
            _with(bots=["bot-2"], customer_id="c"),
            "share bot bot-2: its records would be loaded twice",
        ),
        (_with(name="customer-a"), "share name customer-a"),
        (_with(name="customer_a"), "shard 2: name must be 1-40 lower-case letters"),
        (_with(bot_token="secret"), "shard customer-b: unknown key 'bot_token'"),
        (_with(token_env="not a variable"), "token_env must name the environment variable"),
        (_with(bots=[{"bot_id": True, "customer_id": "c"}]), "bot_id must be a non-empty string"),
        (
            "shards:\n- {name: a, token_env: T, customer_id: 0777, bots: [b]}\n",
            "shard a: customer_id must be a non-empty string (quote ids",
        ),
        (_with(bots=["b-${HOME}"], customer_id="c"), "bot_id 'b-${HOME}' holds $"),
        (
            "shards:\n- {name: a, token_env: T, customer_id: c, bots: [b]}\n"
            "shards:\n- {name: b, token_env: U, customer_id: c, bots: [d]}\n",
            "shards.yml: key 'shards' given twice (line 3)",
        ),
        ({**GOOD, "schema_prefix": "pg_bots"}, "schema_prefix may not start with pg_"),
        (_with(bots=[]), "bots must be a list of at least one bot id"),
        (_with(bots=[{"bot_id": "bot-3"}]), "bot bot-3 has no customer_id"),
        (_with(bots=["bot-3", "bot-3"], customer_id="c"), "bot bot-3 is listed twice"),
        (_with(config={"bots": []}), "shard customer-b: bots is the shard's own"),
        ({**GOOD, "config": {"bot_token": "x"}}, "shards.yml: bot_token is the shard's own"),
        (
            {**GOOD, "schema_prefix": "Bot Penguin"},
            "schema_prefix must be a lower-case SQL name of 1-30 letters, digits or _",
        ),
        ({**GOOD, "schema_prefix": "b" * 31}, "(got 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')"),
        ({**GOOD, "shards": []}, "`shards` must be a list of at least one shard"),
        ("shards: [\n  - name: a\n", "shards.yml: not valid YAML (line 2)"),
        ("- just a list", "expected a mapping with a `shards` list"),
    ],
)
def test_a_shards_file_that_would_break_is_refused_in_one_line(
    tmp_path: Path, document: Any, line: str
) -> None:
    done = _shards(tmp_path, document, "write")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert line in done.stderr, done.stderr
    assert not (tmp_path / "shards.meltano.yml").exists()


@pytest.mark.parametrize(
    ("document", "meltano_yml", "line"),
    [
        (
            _with(name="mirror"),
            PROJECT,
            "shard mirror: meltano.yml already has a plugin tap-botpenguin--mirror",
        ),
        (
            {**GOOD, "config": {"request_per_minute": 90}},
            PROJECT,
            "shard customer-a: request_per_minute is not a setting of tap-botpenguin",
        ),
        (GOOD, None, "shards: no meltano.yml in "),
        (
            GOOD,
            PROJECT.replace("- ./shards.meltano.yml", "- ./other.meltano.yml"),
            "meltano.yml does not include shards.meltano.yml, so Meltano would not see the shards",
        ),
        (
            GOOD,
            "include_paths: [./*.meltano.yml]\nplugins:\n  extractors: [{name: tap-other}]\n",
            "meltano.yml has no extractor tap-botpenguin for the shards to inherit",
        ),
    ],
)
def test_a_shard_that_clashes_with_the_project_is_refused_in_one_line(
    tmp_path: Path, document: Any, meltano_yml: str | None, line: str
) -> None:
    done = _shards(tmp_path, document, "write", meltano_yml=meltano_yml)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert line in done.stderr, done.stderr
    assert not (tmp_path / "shards.meltano.yml").exists()


def test_a_project_that_includes_generated_files_by_a_pattern_takes_the_shards(
    tmp_path: Path,
) -> None:
    project = PROJECT.replace("- ./shards.meltano.yml", "- ./*.meltano.yml")
    assert project != PROJECT
    done = _shards(tmp_path, GOOD, "write", meltano_yml=project)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shards.meltano.yml").exists()


def test_a_token_pasted_as_token_env_is_refused_without_being_shown(tmp_path: Path) -> None:
    token = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    done = _shards(tmp_path, _with(token_env=token), "check", TOKEN_A="tok-a")
    assert done.returncode == 2
    assert "token_env must name the environment variable" in done.stderr
    assert token not in done.stderr


def test_tokens_are_found_where_meltano_finds_them_and_nothing_overrides_a_shard(
    tmp_path: Path,
) -> None:
    """`.env` under the environment, as Meltano reads them; a shard's own namespace variable
    for its token or bots would slip past the one-token and one-bot checks."""
    (tmp_path / ".env").write_text("TOKEN_A=tok-from-file-0001\nTOKEN_B='tok-from-file-0002'\n")
    assert _shards(tmp_path, GOOD, "check").returncode == 0
    same = _shards(tmp_path, GOOD, "check", TOKEN_B="tok-from-file-0001")
    assert "shards customer-a and customer-b hold the same token" in same.stderr
    assert "tok-from-file" not in same.stderr
    for variable in ("TAP_BOTPENGUIN__CUSTOMER_A_BOT_TOKEN", "TAP_BOTPENGUIN__CUSTOMER_B_BOTS"):
        overridden = _shards(tmp_path, GOOD, "check", **{variable: "tok-from-file-0002"})
        assert overridden.returncode == 2
        assert overridden.stderr.strip().startswith(
            f"shards: shard {variable[16:26].lower().replace('_', '-')}: {variable} is set and"
            " would override what shards.yml says the shard reads"
        ), overridden.stderr
        assert "tok-from-file" not in overridden.stderr


def test_unicode_ids_are_written_as_they_read(tmp_path: Path) -> None:
    done = _shards(tmp_path, _with(bots=["bötchen-3"], customer_id="c"), "write")
    assert done.returncode == 0, done.stderr
    assert "bot_id: bötchen-3" in (tmp_path / "shards.meltano.yml").read_text()


def test_one_token_in_two_shards_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """Two variables, one token: the shards would share one allowance (100 requests a minute)."""
    done = _shards(tmp_path, GOOD, "check", TOKEN_A="tok-0123456789", TOKEN_B=" tok-0123456789\n")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "shards: shards customer-a and customer-b hold the same token (TOKEN_A and TOKEN_B):"
        " one token is one allowance, so its bots belong in one shard"
    )
    assert "tok-0123456789" not in done.stderr
    unset = _shards(tmp_path, GOOD, "check", TOKEN_A="tok-a")
    assert (
        unset.stderr.strip()
        == "shards: shard customer-b: TOKEN_B is not set (its token goes there)"
    )
    fine = _shards(tmp_path, GOOD, "check", TOKEN_A="tok-a", TOKEN_B="tok-b")
    assert fine.returncode == 0, fine.stderr
    assert "tok-a" not in (tmp_path / "shards.meltano.yml").read_text()


def test_the_sandbox_shards_file_names_the_sandbox_agency_account() -> None:
    """scripts/orchestrate.sh runs orchestrate/shards.sandbox.yml against `--account agency`."""
    document = yaml.safe_load((ROOT / "orchestrate" / "shards.sandbox.yml").read_text())
    shards = document["shards"]
    settings = agency_settings("http://127.0.0.1:1")
    assert len(shards) == len(AGENCY_CUSTOMERS)
    for shard, customer in zip(shards, AGENCY_CUSTOMERS.values(), strict=True):
        assert (shard["customer_id"], shard["bots"]) == (customer.customer_id, list(customer.bots))
        assert settings[shard["token_env"]] == customer.token
    assert document["config"]["api_url"] == "${BOTPENGUIN_SANDBOX_URL}"
