#!/usr/bin/env bash
# The test command: set-up if needed, PostgreSQL up, lint, type check, import rules, then
# every test.
# Extra arguments go to pytest (e.g. scripts/test.sh -k throttle).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/orchestrate.sh --set-up  # orchestrate/.venv: Dagster, for tests/test_orchestrate.py
pg_env=$(scripts/postgres.sh)  # an assignment, so that a failure stops here (set -e)
eval "$pg_env"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy tap_botpenguin orchestrate/shards.py
# The Dagster definitions against Dagster's own (typed) package, in its venv.
.venv/bin/mypy --strict --follow-imports=silent --python-executable orchestrate/.venv/bin/python \
  --cache-dir orchestrate/.venv/.mypy_cache orchestrate/definitions.py orchestrate/summary.py
.venv/bin/lint-imports --no-cache  # the layers' import rules (pyproject.toml, docs/architecture.md)
.venv/bin/pytest "$@"
