#!/usr/bin/env bash
# The main job: `meltano run tap-botpenguin target-duckdb`, then show what landed.
# With BotPenguin credentials (TAP_BOTPENGUIN_* in the environment or .env) it reads the real
# API into output/warehouse.duckdb; without them it starts the local sandbox and reads that
# into output/sandbox.duckdb, with its own state. Run it again: the second run is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mkdir -p output

has_credentials() {
  [ -n "${TAP_BOTPENGUIN_BOT_TOKEN:-}" ] || [ -n "${TAP_BOTPENGUIN_BOTS:-}" ] ||
    grep -qE '^\s*(export\s+)?TAP_BOTPENGUIN_(BOT_TOKEN|BOTS)=' .env 2>/dev/null
}

run_args=()
if has_credentials; then
  warehouse=output/warehouse.duckdb
  echo "Extracting from the BotPenguin API into $warehouse" >&2
else
  warehouse=output/sandbox.duckdb
  url_file=$(mktemp)
  .venv/bin/python -m tap_botpenguin.sandbox --port 0 --url-file "$url_file" >/dev/null &
  sandbox_pid=$!
  trap 'kill $sandbox_pid 2>/dev/null; rm -f "$url_file"' EXIT
  for _ in $(seq 100); do [ -s "$url_file" ] && break; sleep 0.1; done
  [ -s "$url_file" ] || { echo "The sandbox did not start" >&2; exit 1; }
  eval "$(.venv/bin/python -m tap_botpenguin.sandbox.env "$(cat "$url_file")")"
  export TARGET_DUCKDB_FILEPATH="$PWD/$warehouse"
  run_args+=(--state-id-suffix sandbox)
  echo "No BotPenguin credentials found: extracting from the local sandbox ($(cat "$url_file")) into $warehouse" >&2
fi

.venv/bin/meltano run "${run_args[@]}" tap-botpenguin target-duckdb
.venv/bin/python scripts/show_warehouse.py "$warehouse"
