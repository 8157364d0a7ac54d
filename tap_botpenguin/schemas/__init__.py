"""JSON Schemas of the streams (one file per schema)."""
