#!/usr/bin/env bash
# The suite on the next singer-sdk (a release candidate), in its own virtual environment,
# so that an upgrade's breaks show up before users get it. The Meltano end-to-end tests
# (`-m e2e`) install the tap the way meltano.yml says, with the SDK pyproject.toml resolves,
# so they run in scripts/test.sh only. Extra arguments go to pytest.
#   NEXT_SDK=0.55.0b7 scripts/test_next_sdk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
next=${NEXT_SDK:-0.55.0b7}
venv=.venv-next-sdk
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.setup-$next-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log=$venv/setup.log
  echo "Setting up $venv with singer-sdk $next (log: $log)..." >&2
  if ! {
    "$venv/bin/python" -m pip install --quiet --upgrade pip &&
      "$venv/bin/python" -m pip install --quiet -e ".[dev]" "singer-sdk[msgspec,testing]==$next"
  } >"$log" 2>&1; then
    cat "$log" >&2
    echo "The set-up of $venv failed (output above, also in $log)" >&2
    exit 1
  fi
  rm -f "$venv"/.setup-*
  touch "$stamp"
fi
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("singer-sdk"))')
[ "$installed" = "$next" ] || { echo "$venv has singer-sdk $installed, not $next" >&2; exit 1; }
echo "singer-sdk $installed: type check and the suite without Meltano (-m 'not e2e')" >&2
"$venv/bin/mypy" --cache-dir "$venv/.mypy_cache" tap_botpenguin
"$venv/bin/pytest" -m "not e2e" -p no:cacheprovider "$@"
