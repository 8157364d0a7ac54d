"""`python -m orchestrate.summary [INVOCATION]`: what a run of the `shards` job loaded.

For scripts/orchestrate.sh, from Dagster's own records (DAGSTER_HOME), not from its log: one line
per shard (records per stream, schema, state ID), then the marts' dbt line; for a failed run,
each failed step's one line. Exits 1 when the run did not succeed, 2 when none was found. The run is
the one tagged `botpenguin/invocation=INVOCATION` (`dagster job execute --tags`), else the
latest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

from orchestrate.definitions import JOB


def failures(instance: dg.DagsterInstance, run_id: str) -> Iterator[tuple[str, str]]:
    """(step, its one-line description) for every step of a run that failed."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        data = event.step_failure_data
        user = data.user_failure_data if data is not None else None
        if user is not None and user.description:
            yield event.step_key, user.description
        elif data is not None and data.error is not None:
            yield event.step_key, data.error.message.strip().splitlines()[-1]


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, Mapping[str, object]]:
    """Asset name to its metadata (plain values), for every asset the run materialized."""
    found: dict[str, Mapping[str, object]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None:
            metadata = {key: value.value for key, value in materialization.metadata.items()}
            found[materialization.asset_key.to_user_string()] = metadata
    return found


def lines(instance: dg.DagsterInstance, run_id: str) -> Iterator[str]:
    """The summary of one run: the shards that loaded, the steps that failed, the marts."""
    assets = materializations(instance, run_id)
    for metadata in (assets[name] for name in sorted(assets) if name.startswith("shard_")):
        streams = ", ".join(
            f"{key.removeprefix('records ')} {value}"
            for key, value in metadata.items()
            if key.startswith("records ")
        )
        yield (
            f"shard {metadata['shard']}: {streams or 'no records'} into {metadata['schema']}"
            f" (state {metadata['state id']})"
        )
    failed = list(failures(instance, run_id))
    for step, description in failed:
        yield f"{step} failed: {description}"
    if "marts" in assets:
        yield f"marts: {assets['marts']['dbt']} in {assets['marts']['schema']}"
    elif failed and all(step != "marts" for step, _ in failed):
        yield "marts: not built (every shard must load first)"


#: The tag scripts/orchestrate.sh gives its run, to find that one run again.
INVOCATION_TAG = "botpenguin/invocation"


def main(argv: Sequence[str]) -> int:
    """Print the summary of the run tagged `argv[0]` (default: the latest run of the job)."""
    tags = {INVOCATION_TAG: argv[0]} if argv else {}
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=JOB, tags=tags), limit=1)
        if not runs:
            print(f"no run of the {JOB} job found", file=sys.stderr)
            return 2
        run = runs[0]
        for line in lines(instance, run.run_id):
            print(line)
        return 0 if run.status == dg.DagsterRunStatus.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
