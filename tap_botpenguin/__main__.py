"""`python -m tap_botpenguin`: the same as the `tap-botpenguin` command."""

from tap_botpenguin.tap import TapBotPenguin

TapBotPenguin.cli()
