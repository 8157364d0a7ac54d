#!/usr/bin/env bash
# The shards under Dagster, once: every shard of the shards file side by side (Dagster's
# multiprocess executor, one process per shard), then the dbt build over all their schemas
# (orchestrate/definitions.py, docs/scaling.md). Prints one line per shard (records per stream,
# schema, state ID) and the marts' line; the whole output is in output/orchestrate.log.
# With a shards.yml in the repository it runs that, with the tokens and TARGET_POSTGRES_* /
# DBT_POSTGRES_* from the environment or .env. Without one it starts the local sandbox's agency
# account (two customers, a token each) and loads orchestrate/shards.sandbox.yml into the local
# PostgreSQL (scripts/postgres.sh), marts in botpenguin_sandbox_analytics.
# First use sets up .venv (scripts/bootstrap.sh) and orchestrate/.venv (Dagster, from
# orchestrate/requirements.txt); `scripts/orchestrate.sh --set-up` does only that.
# DEMO_OUTPUT_DIR moves output/ elsewhere (the tests use it); Dagster's runs are kept in
# <output>/dagster (DAGSTER_HOME), so no ~/.dagster is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

venv=orchestrate/.venv
[ -x "$venv/bin/python" ] || .venv/bin/python -m venv "$venv"
stamp="$venv/.setup-$(sha256sum orchestrate/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log=$venv/setup.log
  echo "Setting up $venv with Dagster (first run only, under a minute; log: $log)..." >&2
  # uv comes with Meltano in .venv: it installs Dagster several times faster than pip.
  if ! .venv/bin/uv pip install --quiet --python "$venv/bin/python" \
    -r orchestrate/requirements.txt >"$log" 2>&1; then
    cat "$log" >&2
    echo "The set-up of $venv failed (output above, also in $log)" >&2
    exit 1
  fi
  rm -f "$venv"/.setup-*
  touch "$stamp"
fi
[ "${1:-}" = --set-up ] && exit 0

out=${DEMO_OUTPUT_DIR:-output}
mkdir -p "$out/dagster"
out=$(cd "$out" && pwd)
export DAGSTER_HOME=$out/dagster
touch "$DAGSTER_HOME/dagster.yaml" # the defaults: runs and logs kept under DAGSTER_HOME
log=$out/orchestrate.log
: >"$log"

if [ -f shards.yml ]; then
  shards_file=$PWD/shards.yml
  echo "Running the shards of shards.yml" >&2
  # The shards' token variables, as Meltano reads them: the environment first, then .env.
  run=(.venv/bin/dotenv -f .env run --no-override --)
  [ -f .env ] || run=()
else
  url_file=$(mktemp)
  .venv/bin/python -m tap_botpenguin.sandbox --account agency --shape demo --port 0 \
    --url-file "$url_file" >/dev/null 2>>"$log" &
  sandbox_pid=$!
  trap 'kill $sandbox_pid 2>/dev/null; rm -f "$url_file"' EXIT
  for _ in $(seq 100); do [ -s "$url_file" ] && break; sleep 0.1; done
  [ -s "$url_file" ] || { echo "The sandbox did not start (log: $log)" >&2; exit 1; }
  url=$(cat "$url_file")
  eval "$(.venv/bin/python -m tap_botpenguin.sandbox.env --account agency "$url")"
  pg_env=$(scripts/postgres.sh 2>>"$log") # an assignment, so that a failure stops here
  eval "$pg_env"
  # Role, password and database are all tap_botpenguin (scripts/postgres.sh).
  export TARGET_POSTGRES_HOST=localhost TARGET_POSTGRES_PORT=$TEST_PG_PORT \
    TARGET_POSTGRES_USER=tap_botpenguin TARGET_POSTGRES_PASSWORD=tap_botpenguin \
    TARGET_POSTGRES_DATABASE=tap_botpenguin
  export DBT_POSTGRES_HOST=localhost DBT_POSTGRES_PORT=$TEST_PG_PORT \
    DBT_POSTGRES_USER=tap_botpenguin DBT_POSTGRES_PASSWORD=tap_botpenguin \
    DBT_POSTGRES_DBNAME=tap_botpenguin DBT_POSTGRES_SCHEMA=botpenguin_sandbox_analytics
  shards_file=$PWD/orchestrate/shards.sandbox.yml
  run=()
  echo "No shards.yml found: two shards of the local sandbox ($url), a token each," \
    "into the local PostgreSQL (port $TEST_PG_PORT, database tap_botpenguin)" >&2
fi
export BOTPENGUIN_PROJECT_DIR=$PWD BOTPENGUIN_SHARDS_FILE=$shards_file

invocation=$(.venv/bin/python -c 'import uuid; print(uuid.uuid4())')
echo "Dagster job shards: the shards side by side, then dbt (log: $log)" >&2
"${run[@]}" "$venv/bin/dagster" job execute -m orchestrate.definitions -d "$PWD" -j shards \
  --tags "{\"botpenguin/invocation\": \"$invocation\"}" >>"$log" 2>&1 || true
# What Dagster recorded: a line per shard and the marts', or each failed step's one line.
status=0
"${run[@]}" "$venv/bin/python" -m orchestrate.summary "$invocation" 2>>"$log" || status=$?
if [ "$status" = 2 ]; then
  # No run at all: the definitions did not load (a shards file that cannot run, say); the
  # traceback's last line says why.
  grep -v '^\s' "$log" | tail -1 >&2
fi
if [ "$status" != 0 ]; then
  echo "The job failed (every line: $log)" >&2
  exit 1
fi
