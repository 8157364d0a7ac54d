"""Mirroring: full-table replication whose ACTIVATE_VERSION follows the run's last record.

With `emit_activate_version_messages`, each run's rows replace the last's in the target; the
version is only activated when every listing ended where it surely ends.
"""

from __future__ import annotations

import sys

from tap_botpenguin.streams.evolving import EvolvingStream

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override


class MirroringStream(EvolvingStream):
    """Sends ACTIVATE_VERSION after the last bot's records, and only for a complete read."""

    #: Every listing of this run ended where it surely ends (see `_activate_version`).
    _complete = True

    @property
    def mirrors(self) -> bool:
        """Whether each run's rows replace the last's (`emit_activate_version_messages`)."""
        return self.settings.mirror

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        # The SDK sends ACTIVATE_VERSION before the records. target-postgres then marks
        # (or hard-deletes) every row at once, and a run that fails half-way leaves the
        # table emptied. `get_records` sends it after the last bot's records instead.
        return False

    def activate_version(self) -> None:
        """Tell the target this run's rows are the whole table: the others were deleted."""
        if not self._complete:
            self.logger.warning(
                "%s: not activating this run's table version: a listing may have ended "
                "early (see the warnings above), so rows it did not send are kept",
                self.name,
            )
            return
        self.activate_table_version()
