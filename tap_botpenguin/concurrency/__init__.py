"""The only layer that starts threads: workers per token, pages ahead, the deadline watchdog."""
