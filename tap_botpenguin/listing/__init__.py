"""One listing's read: pages in order, its end, scan decisions (no SDK; one reading thread)."""
