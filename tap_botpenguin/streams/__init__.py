"""The two streams: one per `type` of the chats listing."""

from __future__ import annotations

from tap_botpenguin.streams.listing_stream import BotPenguinStream


class LeadsStream(BotPenguinStream):
    """Conversations BotPenguin marked as leads (`type=lead`)."""

    name = "leads"
    inbox_type = "lead"


class ChatsStream(BotPenguinStream):
    """All other conversations (`type=non-lead`)."""

    name = "chats"
    inbox_type = "non-lead"
