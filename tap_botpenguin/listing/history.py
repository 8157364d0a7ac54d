"""What a bot's state remembers of one listing between runs: times and verdicts, no token.

The state is input the tap did not necessarily write (an edited file, an older version's):
values of the wrong type are ignored, so what they covered is found out again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tap_botpenguin.config.state import SCAN_TYPES
from tap_botpenguin.listing.order import ORDER_KEYS

#: The key of a bot partition's state that holds its `ScanHistory`.
SCAN_STATE_KEY = "scan"
#: The key whose cutoff is the bookmark itself (the SDK's replication key).
BOOKMARK_KEY = "updatedAt"


@dataclass(frozen=True)
class ScanHistory:
    """What a bot's state remembers of one listing between runs (ids and times, no token)."""

    #: Start of the latest complete full scan (every record emitted), by the tap's clock.
    last_full_scan_at: str | None = None
    #: The key the listing was last found newest first by (`listing.order`), if any.
    order_key: str | None = None
    #: The newest value of `order_key` seen (kept for keys other than `BOOKMARK_KEY`).
    newest_seen: str | None = None
    #: Where the order broke, for the person reading the log.
    order_note: str | None = None
    #: Pages of the latest read to the end; the API's page size as far as it is known.
    pages: int | None = None
    page_size: int | None = None

    @classmethod
    def load(cls, partition: dict[str, Any]) -> ScanHistory:
        """The history in a partition's state; values of the wrong type are ignored.

        A state written before orders other than `updatedAt` were known says
        `"newest_first": true`: that is `order_key` `updatedAt`.
        """
        raw = partition.get(SCAN_STATE_KEY)
        if not isinstance(raw, dict):
            return cls()
        values = {
            item.name: raw[item.name]
            for item in fields(cls)
            if type(raw.get(item.name)) is SCAN_TYPES[item.name]
        }
        if "order_key" not in raw and raw.get("newest_first") is True:
            values["order_key"] = BOOKMARK_KEY
        if values.get("order_key") not in (None, *ORDER_KEYS):
            values.pop("order_key")
        return cls(**values)

    def save(self, partition: dict[str, Any]) -> None:
        """Write this history into a partition's state."""
        partition[SCAN_STATE_KEY] = {k: v for k, v in asdict(self).items() if v is not None}
