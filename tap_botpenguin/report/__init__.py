"""What the user sees: errors, redaction, progress lines, set-aside listings, log policy.

The bottom layer: imports nothing else of the tap, nor the SDK.
"""
