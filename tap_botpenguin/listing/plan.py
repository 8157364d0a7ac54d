"""One bot's listing as this run reads it: its settings, page-by-page state and plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_botpenguin.listing.ahead import PagesAhead
from tap_botpenguin.listing.ending import Listing
from tap_botpenguin.listing.scan import ScanHistory, ScanPlan, ScanRun
from tap_botpenguin.report.progress import Progress

if TYPE_CHECKING:
    from tap_botpenguin.tap import BotSettings


@dataclass
class BotRead:
    """Everything about reading one bot's listing in this run."""

    bot: BotSettings
    listing: Listing
    scan: ScanRun
    progress: Progress
    history: ScanHistory
    plan: ScanPlan
    #: Where a worker hands each page's records (see `concurrency`); None: yielded.
    sink: Callable[[list[dict[str, Any]]], None] | None = None
    ahead: PagesAhead = field(init=False)

    def in_order(self) -> bool:
        """The listing's records came newest first so far (`readahead` relies on it)."""
        return self.scan.broken_at is None

    def may_read_ahead(self) -> bool:
        """A full scan, in an order seen newest first so far, whose last page was full."""
        return self.plan.full and self.in_order() and self.listing.last_page_full
