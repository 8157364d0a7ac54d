#!/usr/bin/env bash
# The main job: `meltano run tap-botpenguin target-duckdb dbt-duckdb:build`, then a summary of
# what this run loaded and of the analytics tables (the dbt marts). The whole output of the
# run is in output/last-run.log; the screen shows what a person reads (scripts/demo_output.py).
# With BotPenguin credentials (TAP_BOTPENGUIN_* in the environment or .env) it reads the real
# API into output/warehouse.duckdb; without them it starts the local sandbox and reads that
# into output/sandbox.duckdb, with its own state. Run it again: the second run is incremental.
# DEMO_OUTPUT_DIR moves output/ elsewhere (the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
out=${DEMO_OUTPUT_DIR:-output}
mkdir -p "$out"

has_credentials() {
  [ -n "${TAP_BOTPENGUIN_BOT_TOKEN:-}" ] || [ -n "${TAP_BOTPENGUIN_BOTS:-}" ] ||
    grep -qE '^\s*(export\s+)?TAP_BOTPENGUIN_(BOT_TOKEN|BOTS)=' .env 2>/dev/null
}

run_args=()
if has_credentials; then
  warehouse=$out/warehouse.duckdb
  echo "Extracting from the BotPenguin API into $warehouse" >&2
else
  warehouse=$out/sandbox.duckdb
  url_file=$(mktemp)
  .venv/bin/python -m tap_botpenguin.sandbox --shape demo --port 0 --url-file "$url_file" >/dev/null &
  sandbox_pid=$!
  trap 'kill $sandbox_pid 2>/dev/null; rm -f "$url_file"' EXIT
  for _ in $(seq 100); do [ -s "$url_file" ] && break; sleep 0.1; done
  [ -s "$url_file" ] || { echo "The sandbox did not start" >&2; exit 1; }
  eval "$(.venv/bin/python -m tap_botpenguin.sandbox.env "$(cat "$url_file")")"
  run_args+=(--state-id-suffix sandbox)
  echo "No BotPenguin credentials found: extracting from the local sandbox ($(cat "$url_file")) into $warehouse" >&2
fi
warehouse=$(cd "$(dirname "$warehouse")" && pwd)/$(basename "$warehouse")
export TARGET_DUCKDB_FILEPATH=$warehouse DBT_DUCKDB_PATH=$warehouse

# On screen: the tap's lines, dbt's closing line (and its errors, if any), a failed plugin's
# last lines (its traceback), then the summary.
# Every line, dbt's for each model and test included, goes to $log.
log=$out/last-run.log
.venv/bin/meltano run "${run_args[@]}" tap-botpenguin target-duckdb dbt-duckdb:build 2>&1 |
  tee "$log" | .venv/bin/python scripts/demo_output.py "$log" >&2
.venv/bin/python scripts/show_warehouse.py "$warehouse" "$log"
