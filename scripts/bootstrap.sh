#!/usr/bin/env bash
# Idempotent set-up: .venv with the tap, Meltano and the dev tools, then Meltano's plugins.
# Re-runs only when pyproject.toml or meltano.yml changed since the last successful set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "tap-botpenguin needs Python >= 3.10 (found $("$python" --version 2>&1))" >&2
  exit 1
}

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.setup-$(cat pyproject.toml meltano.yml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # pip's and Meltano's output goes to a log, shown only when the set-up fails.
  log=.venv/setup.log
  echo "Setting up .venv and Meltano plugins (first run only, a few minutes; log: $log)..." >&2
  if ! {
    .venv/bin/python -m pip install --quiet --upgrade pip &&
      .venv/bin/python -m pip install --quiet -e ".[dev]" &&
      .venv/bin/meltano --log-level=warning install &&
      # Test-only: fakesnow stands in for Snowflake when tests/test_snowflake.py compiles
      # the dbt project with dbt-snowflake (scripts/snowflake_compile.py).
      .venv/bin/uv pip install --quiet --python .meltano/utilities/dbt-snowflake/venv/bin/python \
        "fakesnow>=0.12,<0.13"
  } >"$log" 2>&1; then
    cat "$log" >&2
    echo "The set-up failed (output above, also in $log)" >&2
    exit 1
  fi
  rm -f .venv/.setup-*
  touch "$stamp"
fi
