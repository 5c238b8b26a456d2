"""The runtime pipeline: its config, the recommend code path and its artifacts (what serving loads)."""
