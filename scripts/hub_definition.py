"""Write hub/tap-botpenguin.yml, the Meltano Hub style definition, from meltano.yml.

The extractor's settings and capabilities are declared once, in meltano.yml; this copies them
into the definition users add to their own projects (`meltano add tap-botpenguin --from-ref`).
`tests/test_meltano_project.py` fails when the file is out of date:

    .venv/bin/python scripts/hub_definition.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "hub" / "tap-botpenguin.yml"
REPO = "https://github.com/botpenguin-elt/tap-botpenguin"
RAW = f"{REPO.replace('github.com', 'raw.githubusercontent.com')}/main/hub/tap-botpenguin.yml"
HEADER = f"""\
# Meltano Hub style definition of tap-botpenguin, for your own Meltano project (Meltano 4):
#
#   meltano add tap-botpenguin --from-ref {RAW}
#   meltano add tap-botpenguin --from-ref path/to/tap-botpenguin/hub/tap-botpenguin.yml
#
# pip_url installs from the Git repository; to install from a checkout or a wheel instead,
# change pip_url in your meltano.yml after adding. Generated from meltano.yml by
# scripts/hub_definition.py: edit that, then regenerate.
"""


def definition() -> dict[str, Any]:
    """The definition: identity, where to install from, and meltano.yml's settings."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-botpenguin")
    return {
        "name": "tap-botpenguin",
        "namespace": extractor["namespace"],
        "variant": "botpenguin-elt",
        "label": "BotPenguin",
        "description": "Chats and leads from BotPenguin chatbots (GET /inbox/direct/chats)",
        "docs": f"{REPO}#readme",
        "repo": REPO,
        "pip_url": f"git+{REPO}.git",
        "executable": extractor["executable"],
        "capabilities": extractor["capabilities"],
        # Meltano accepts a configuration when all the settings of one group are set.
        "settings_group_validation": [
            ["bot_token", "customer_id", "bot_id"],
            ["bot_token", "customer_id", "bots"],
            ["bots"],
        ],
        "settings": extractor["settings"],
    }


def render() -> str:
    """The file's text."""
    body = yaml.safe_dump(definition(), sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


if __name__ == "__main__":
    DEFINITION.parent.mkdir(exist_ok=True)
    DEFINITION.write_text(render())
    print(f"wrote {DEFINITION.relative_to(ROOT)}")
