"""The Dagster project: every shard of the shards file in parallel, then the dbt build.

Assets, in order (docs/scaling.md):

- `prepare`: checks the environment (every token variable set, no token in two shards),
  writes shards.meltano.yml and runs `meltano upgrade database`: Meltano processes started at
  once on a fresh SQLite system database race to create its tables and fail, so the database is
  made once, before the shards fan out.
- `shard_<name>`, one per shard: `meltano run tap-botpenguin--<name> <loader>` in the Meltano
  project; its output streams into Dagster's log; its metadata are the records it wrote per
  stream, its schema and its state ID. A failure is the tap's own last error line.
- `marts`: `meltano run dbt-postgres--shards:build`, once every shard has loaded.

The job `shards` runs them with the multiprocess executor, so the shards run side by side; the
schedule `shards_hourly` runs it every hour once turned on. Dagster lives in its own virtual
environment (orchestrate/.venv, orchestrate/requirements.txt), Meltano and the tap in the
project's; the two meet only through `meltano` as a subprocess, as on a pod per shard.

Settings, from the environment of the Dagster process (and so of each step):
BOTPENGUIN_PROJECT_DIR (the Meltano project; default this repository), BOTPENGUIN_SHARDS_FILE
(default shards.yml in the project), BOTPENGUIN_SHARDS_LOADER (default target-postgres),
BOTPENGUIN_SHARDS_DBT (default dbt-postgres--shards), MELTANO_EXECUTABLE (default the project's,
or this repository's, .venv/bin/meltano), MELTANO_ENVIRONMENT (default dev).

Load it with `dagster job execute -m orchestrate.definitions -d <repository> -j shards`, or
`dagster dev -m orchestrate.definitions` from the repository.
"""

# No `from __future__ import annotations`: Dagster 1.13 reads the `context` annotation at
# definition time and refuses the string "dg.AssetExecutionContext".
import os
import re
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from orchestrate.shards import (
    Shard,
    Shards,
    ShardsError,
    load_shards,
    meltano_executable,
    prepare_project,
)

REPOSITORY = Path(__file__).resolve().parents[1]
JOB = "shards"

# Meltano's console format: `<timestamp> [<level>  ] <plugin>  <message>`.
_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<plugin>\S+)\s+(?P<message>.*)$")
# The tap's closing line per bot and stream (tap_botpenguin/report/progress.py).
_DONE = re.compile(r"^done (?P<stream>\S+) bot \S+: .*; read \d+, emitted (?P<emitted>\d+),")
_RUN_TOTAL = re.compile(r"^run total: .*; emitted (?P<emitted>\d+),")
_STATE_ID = re.compile(r"Running job with name '(?P<state_id>[^']+)'")
_DBT_DONE = re.compile(r"Done\. PASS=\d+ .*")
_PROBLEMS = {"error", "critical"}


def project_dir() -> Path:
    """The Meltano project the shards run in (BOTPENGUIN_PROJECT_DIR, default this repository)."""
    return Path(os.environ.get("BOTPENGUIN_PROJECT_DIR") or REPOSITORY).resolve()


def shards_file() -> Path:
    """The shards file (BOTPENGUIN_SHARDS_FILE, relative to the project; default shards.yml)."""
    return project_dir() / os.environ.get("BOTPENGUIN_SHARDS_FILE", "shards.yml")


def loader() -> str:
    """The Meltano loader every shard writes with (BOTPENGUIN_SHARDS_LOADER)."""
    return os.environ.get("BOTPENGUIN_SHARDS_LOADER") or "target-postgres"


def dbt_utility() -> str:
    """The dbt utility reading every shard's schema (BOTPENGUIN_SHARDS_DBT)."""
    return os.environ.get("BOTPENGUIN_SHARDS_DBT") or "dbt-postgres--shards"


def state_id(shard: Shard) -> str:
    """Meltano's state ID of a shard's run: `<environment>:<extractor>-to-<loader>`."""
    environment = os.environ.get("MELTANO_ENVIRONMENT") or "dev"
    return f"{environment}:{shard.plugin}-to-{loader()}"


@dataclass
class MeltanoRun:
    """What one `meltano` command said: exit code, per-plugin error lines, counts."""

    returncode: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    emitted: Counter[str] = field(default_factory=Counter)
    run_total: int | None = None
    state_id: str | None = None
    dbt_done: str | None = None
    tail: list[str] = field(default_factory=list)

    def read(self, line: str) -> None:
        """Take what matters from one line of Meltano's output."""
        self.tail = [*self.tail[-19:], line]
        found = _STATE_ID.search(line)
        if found:
            self.state_id = found["state_id"]
        found = _DBT_DONE.search(line)
        if found:
            self.dbt_done = found[0]
        match = _LINE.match(line)
        if not match:
            return
        message = match["message"]
        if match["level"] in _PROBLEMS:
            self.errors.append((match["plugin"], message))
        done = _DONE.match(message)
        if done:
            self.emitted[done["stream"]] += int(done["emitted"])
        total = _RUN_TOTAL.match(message)
        if total:
            self.run_total = int(total["emitted"])

    def failure_line(self, plugin: str) -> str:
        """Why it failed, in one line: `plugin`'s last error, else another plugin's, else Meltano's.

        Never a traceback; the tap redacts tokens from its error lines.
        """
        for wanted in (plugin, None, "meltano"):
            for name, message in reversed(self.errors):
                if name == wanted or (wanted is None and name != "meltano"):
                    return message if name == plugin else f"{name}: {message}"
        return f"meltano exited with {self.returncode} (its output is in the log above)"


def run_meltano(context: dg.AssetExecutionContext, *args: str) -> MeltanoRun:
    """Run `meltano <args>` in the project, each line of its output into Dagster's log."""
    command = [meltano_executable(project_dir()), *args]
    context.log.info(f"{project_dir()}$ meltano {' '.join(args)}")
    result = MeltanoRun()
    with subprocess.Popen(
        command,
        cwd=project_dir(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None  # stdout=PIPE above
        for raw in process.stdout:
            line = raw.rstrip("\n")
            result.read(line)
            match = _LINE.match(line)
            if match and match["level"] in _PROBLEMS:
                context.log.error(line)
            elif match and match["level"] == "warning":
                context.log.warning(line)
            else:
                context.log.info(line)
    result.returncode = process.returncode
    return result


def shards() -> Shards:
    """The checked shards file; one line (ShardsError) when it cannot run."""
    return load_shards(shards_file())


@dg.asset(
    group_name="shards",
    kinds={"meltano"},
    description="Checks the tokens, writes shards.meltano.yml, makes Meltano's system database.",
)
def prepare(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
    """Everything the shards share, done once before they start side by side."""

    def run(args: Sequence[str]) -> tuple[int, str]:
        done = run_meltano(context, *args)
        return done.returncode, done.failure_line("meltano")

    try:
        checked = shards()
        written = prepare_project(checked, project_dir(), os.environ, run)
    except ShardsError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    context.log.info(f"wrote {written}")
    return dg.MaterializeResult(
        metadata={
            "shards file": str(checked.source),
            "plugins": ", ".join(shard.plugin for shard in checked.shards),
            "schemas": ", ".join(checked.schemas()),
        }
    )


def asset_name(shard: Shard) -> str:
    """The shard's asset: `shard_<name>` (Dagster names take no `-`)."""
    return "shard_" + shard.name.replace("-", "_")


def shard_asset(shard: Shard) -> dg.AssetsDefinition:
    """The asset that runs one shard: its extractor into the loader, its own state ID."""

    @dg.asset(
        name=asset_name(shard),
        deps=[prepare],
        group_name="shards",
        kinds={"meltano"},
        description=f"`meltano run {shard.plugin} {loader()}` into schema {shard.schema}.",
        metadata={"schema": shard.schema, "token variable": shard.token_env},
    )
    def load(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
        run = run_meltano(context, "run", shard.plugin, loader())
        state = run.state_id or state_id(shard)
        if run.returncode != 0:
            raise dg.Failure(
                description=run.failure_line(shard.plugin),
                metadata={"state id": state, "exit code": run.returncode},
            )
        records = dict(sorted(run.emitted.items()))
        metadata: dict[str, str | int] = {
            "shard": shard.name,
            "schema": shard.schema,
            "state id": state,
            "records": sum(records.values()) if run.run_total is None else run.run_total,
        }
        metadata.update({f"records {stream}": count for stream, count in records.items()})
        return dg.MaterializeResult(metadata=metadata)

    return load


def marts_asset(upstream: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    """The dbt build over every shard's schema, after all of them."""

    @dg.asset(
        name="marts",
        deps=upstream,
        group_name="analytics",
        kinds={"dbt"},
        description=f"`meltano run {dbt_utility()}:build`: staging unions the shards' schemas.",
    )
    def marts(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
        run = run_meltano(context, "run", f"{dbt_utility()}:build")
        if run.returncode != 0:
            raise dg.Failure(description=run.failure_line(dbt_utility()))
        return dg.MaterializeResult(
            metadata={
                "dbt": run.dbt_done or "",
                "schema": os.environ.get("DBT_POSTGRES_SCHEMA", ""),
            }
        )

    return marts


def build_definitions() -> dg.Definitions:
    """Assets, job and schedule for the shards file the environment names."""
    shard_assets = [shard_asset(shard) for shard in shards().shards]
    job = dg.define_asset_job(
        JOB,
        selection=dg.AssetSelection.all(),
        executor_def=dg.multiprocess_executor,
        description="Every shard side by side (one process each), then the dbt build.",
    )
    schedule = dg.ScheduleDefinition(
        name="shards_hourly",
        job=job,
        cron_schedule="0 * * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return dg.Definitions(
        assets=[prepare, *shard_assets, marts_asset(shard_assets)],
        jobs=[job],
        schedules=[schedule],
    )


#: What Dagster loads (`-m orchestrate.definitions`); a shards file that cannot run stops the
#: load with its one-line ShardsError.
defs = build_definitions()
