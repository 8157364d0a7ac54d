"""Talking to the API: one session per thread, throttle, retries, decoding (no SDK)."""
