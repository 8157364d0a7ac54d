"""`batch_config` as this tap can honour it; refused in one line where BATCH would go wrong.

With `batch_config` the records go to files and the target is sent BATCH messages naming
them; the stream maps and the catalog's selection apply to the files as to RECORD messages
(`streams.sdk`). Refused before any request:
- no `encoding.format` or `storage.root`: singer-sdk 0.54 fails with a traceback, 0.55 ignores
  such a `batch_config` or writes into a temporary directory, so the same settings would do
  something else on each;
- a format that needs pyarrow (`parquet`, `arrow`) when it is not installed (the tap does not
  depend on it): the run would fail at its first file;
- `emit_activate_version_messages` (the mirror): rows loaded from a BATCH file carry no table
  version, and target-postgres' ACTIVATE_VERSION marks (or, `hard_delete`, removes) every row
  without one, so the mirror would delete the rows it had just loaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

#: Batch file formats the SDK writes (0.55 adds `arrow`), and those that need pyarrow.
FORMATS = ("jsonl", "parquet", "arrow")
NEED_PYARROW = ("parquet", "arrow")


def batch_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with `batch_config` for this tap, one line each (nothing when unset)."""
    batch = config.get("batch_config")
    if not isinstance(batch, Mapping) or not batch:
        return []  # unset, or a type the JSON Schema refuses already
    encoding = batch.get("encoding")
    storage = batch.get("storage")
    form = encoding.get("format") if isinstance(encoding, Mapping) else None
    root = storage.get("root") if isinstance(storage, Mapping) else None
    problems = []
    if not form or not root:
        problems.append(
            "`batch_config` needs `encoding.format` (`jsonl`) and `storage.root` (where the "
            "files go, e.g. `file:///data/batches`); unset `batch_config` to send RECORD "
            "messages."
        )
    elif form not in FORMATS:
        problems.append(f"`batch_config.encoding.format` must be `jsonl`, got {form!r}.")
    elif form in NEED_PYARROW and importlib.util.find_spec("pyarrow") is None:
        problems.append(
            f"`batch_config.encoding.format` `{form}` needs pyarrow, which is not installed "
            "with the tap: use `jsonl`, or install pyarrow next to the tap."
        )
    if config.get("emit_activate_version_messages"):
        problems.append(
            "`batch_config` cannot be used with `emit_activate_version_messages` (the "
            "mirror): rows loaded from batch files carry no table version, so the target "
            "would mark them deleted. Set `batch_config` to `{}` for the mirror."
        )
    return problems
