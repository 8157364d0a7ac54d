"""Meltano as users run it: their own project, the README's commands, secrets in its output.

`hub/tap-botpenguin.yml` is what users add to their own project
(`meltano add tap-botpenguin --from-ref ...`); it is generated from meltano.yml, whose settings
must match what the tap itself declares (`--about`).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.hub_definition import DEFINITION, render
from tap_botpenguin.sandbox import WEBSITE_BOT, Sandbox

from .helpers import ROOT, STREAM_TYPES, Meltano, fresh_bots

CANARY = "canary-meltano-6c1e0b2f-SECRET"


def _about() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tap_botpenguin", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _meltano_kind(prop: dict[str, Any]) -> str:
    if prop.get("enum"):
        return "options"
    if prop.get("format") == "date-time":
        return "date_iso8601"
    json_type = next(t for t in prop["type"] if t != "null")
    # Not `decimal`: Meltano 4.4 turns a decimal set in the environment into a Decimal it cannot
    # write to the tap's config file. As `string`, the tap reads the number from the text.
    return {"number": "string"}.get(json_type, json_type)


def _extractor(project: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-botpenguin")


def test_meltano_yml_settings_match_the_tap() -> None:
    about = _about()
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = _extractor(project)
    declared = {s["name"]: s for s in extractor["settings"]}
    properties = about["settings"]["properties"]

    assert list(declared) == list(properties)
    for name, prop in properties.items():
        assert declared[name]["kind"] == _meltano_kind(prop), name
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), name
        assert declared[name].get("description"), name
        assert declared[name].get("value") == prop.get("default"), name
    assert declared["bots"]["sensitive"] is True  # its entries may carry tokens
    # singer-sdk 0.55 advertises its built-in `start_date` as `start-date`; the tap has had
    # the setting all along, and Meltano needs no capability for it.
    assert set(extractor["capabilities"]) == set(about["capabilities"]) - {"start-date"}
    assert project["send_anonymous_usage_stats"] is False
    assert {e["name"] for e in project["environments"]} >= {"dev", "prod"}


def test_the_hub_definition_is_generated_from_meltano_yml() -> None:
    assert DEFINITION.read_text() == render(), "run: .venv/bin/python scripts/hub_definition.py"
    definition = yaml.safe_load(DEFINITION.read_text())
    extractor = _extractor(yaml.safe_load((ROOT / "meltano.yml").read_text()))
    assert definition["settings"] == extractor["settings"]
    assert definition["capabilities"] == extractor["capabilities"]
    secrets = {s["name"] for s in definition["settings"] if s.get("sensitive")}
    assert secrets == {"bot_token", "bots"}
    grouped = {name for group in definition["settings_group_validation"] for name in group}
    assert grouped <= {s["name"] for s in definition["settings"]}


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_meltano_commands(documents: list[Path] = DOCUMENTS) -> list[list[str]]:
    """Every `meltano ...` command in the bash blocks of the README and docs/, as arguments."""
    commands = []
    text = "\n".join(document.read_text() for document in documents)
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)  # VAR=value before the command
            if words and words[0] in {"meltano", ".venv/bin/meltano"}:
                commands.append(words[1:])
    return commands


@pytest.mark.e2e
@pytest.mark.parametrize("command", readme_meltano_commands(), ids=" ".join)
def test_the_readme_meltano_commands_exist_in_the_installed_meltano(
    command: list[str], tmp_path: Path
) -> None:
    """`--help` after the command: Meltano resolves the subcommands and every option given,
    then prints help instead of running (so `meltano config tap-botpenguin set` fails)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "meltano"), *command, "--help"],
        cwd=ROOT,
        env={"MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_readme_shows_the_meltano_commands_users_need() -> None:
    commands = [" ".join(c) for c in readme_meltano_commands([ROOT / "README.md"])]
    assert any(c.startswith("add tap-botpenguin --from-ref") for c in commands)
    assert any(c.startswith("config set tap-botpenguin ") for c in commands)
    assert any(c.startswith("run tap-botpenguin--mirror target-postgres") for c in commands)


@pytest.mark.e2e
def test_meltano_never_shows_a_token(tmp_path: Path) -> None:
    bots = fresh_bots()
    for bot in bots:
        bot.token = CANARY
    with Sandbox(bots=bots, rate_limit=None) as sandbox:
        out = tmp_path / "jsonl"
        out.mkdir()
        meltano = Meltano(tmp_path, sandbox, TARGET_JSONL_DESTINATION_PATH=str(out))
        meltano.env["TAP_BOTPENGUIN_BOT_TOKEN"] = f"{CANARY}-top"
        meltano.env["TAP_BOTPENGUIN_BOTS"] = json.dumps(
            [{"bot_id": WEBSITE_BOT, "bot_token": CANARY}]
        )
        outputs = [
            meltano.run("config", "list", "tap-botpenguin", "--all"),
            meltano.run("config", "print", "tap-botpenguin"),
            meltano.run("config", "print", "--format", "env", "tap-botpenguin"),
            meltano.run("--log-level=debug", "run", "tap-botpenguin", "target-jsonl"),
        ]
        assert sandbox.listing_requests(), "the run must have used the token"

    for done in outputs:
        assert CANARY not in done.stdout + done.stderr, done.args
    assert "(redacted)" in outputs[0].stdout
    assert "Several bots in one run" in outputs[0].stdout  # the listing did show `bots`


@pytest.mark.e2e
def test_a_fresh_meltano_project_adds_the_tap_from_its_definition(tmp_path: Path) -> None:
    """As a new user: `meltano init`, `meltano add --from-ref`, `meltano run`, offline."""
    definition = yaml.safe_load(DEFINITION.read_text())
    definition["pip_url"] = str(ROOT)  # this checkout, not the published repository
    (tmp_path / "tap-botpenguin.yml").write_text(yaml.safe_dump(definition))
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())
    jsonl = next(p for p in ours["plugins"]["loaders"] if p["name"] == "target-jsonl")
    (tmp_path / "target-jsonl.yml").write_text(
        yaml.safe_dump({key: jsonl[key] for key in ("name", "namespace", "pip_url", "settings")})
    )
    out = tmp_path / "out"
    out.mkdir()
    with Sandbox(bots=fresh_bots(), rate_limit=None) as sandbox:
        meltano = Meltano(tmp_path, sandbox, cwd=tmp_path, TARGET_JSONL_DESTINATION_PATH=str(out))
        meltano.run("init", "project", "--no-usage-stats")
        meltano.cwd = tmp_path / "project"
        meltano.run("add", "tap-botpenguin", "--from-ref", str(tmp_path / "tap-botpenguin.yml"))
        meltano.run("add", "target-jsonl", "--from-ref", str(tmp_path / "target-jsonl.yml"))
        meltano.run("run", "tap-botpenguin", "target-jsonl")

        for stream, kind in STREAM_TYPES.items():
            [written] = out.glob(f"{stream}*.jsonl")
            records = [json.loads(line) for line in written.read_text().splitlines()]
            assert Counter(r["_id"] for r in records) == Counter(
                record_id for _, record_id in sandbox.all_records(kind)
            )
    added = _extractor(yaml.safe_load((tmp_path / "project" / "meltano.yml").read_text()))
    assert added["settings"] == definition["settings"]
    assert added["settings_group_validation"] == definition["settings_group_validation"]
