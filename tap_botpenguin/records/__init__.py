"""What a record becomes: sanitized, named, its undocumented fields learned (no SDK)."""
