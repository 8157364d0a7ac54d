"""The user's settings: parsed and checked once, then typed values (no SDK, no threads)."""
