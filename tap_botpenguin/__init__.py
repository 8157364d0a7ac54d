"""Singer tap for BotPenguin chats and leads."""
