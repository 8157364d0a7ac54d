"""One bot's listing as this run reads it: its settings, plan and reader (planned on main)."""

from __future__ import annotations

from dataclasses import dataclass

from tap_botpenguin.config.settings import BotSettings
from tap_botpenguin.listing.ending import Listing
from tap_botpenguin.listing.history import ScanHistory
from tap_botpenguin.listing.reader import ListingReader
from tap_botpenguin.listing.scan import ScanPlan, ScanRun
from tap_botpenguin.report.progress import Progress


@dataclass
class BotRead:
    """Everything about reading one bot's listing in this run.

    `reader` runs on the listing's reading thread; `progress` is the main thread's; the
    reader's `listing` and `scan` are read by the main thread once the read has ended.
    """

    bot: BotSettings
    history: ScanHistory
    plan: ScanPlan
    progress: Progress
    reader: ListingReader

    @property
    def listing(self) -> Listing:
        """The listing's pages and end, as read."""
        return self.reader.listing

    @property
    def scan(self) -> ScanRun:
        """The listing's order and early stop, as read."""
        return self.reader.scan


def may_read_ahead(plan: ScanPlan, scan: ScanRun, listing: Listing) -> bool:
    """A full scan, newest first by some key so far (`listing.order`), its last page full."""
    return plan.full and scan.in_order and listing.last_page_full
