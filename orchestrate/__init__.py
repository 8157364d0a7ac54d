"""The orchestration of shards: the shards file (shards.py) and the Dagster project."""
