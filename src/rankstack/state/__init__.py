"""Online state for serving: recent histories, exposure counts and bandit statistics (SQLite or Redis)."""

from __future__ import annotations

from pathlib import Path

from rankstack.errors import ConfigError
from rankstack.pipeline.api import StateStore
from rankstack.state.base import StateStoreError
from rankstack.state.redis_store import RedisStateStore
from rankstack.state.sqlite import SQLiteStateStore

__all__ = ["RedisStateStore", "SQLiteStateStore", "StateStoreError", "open_state"]


def open_state(spec: str) -> StateStore:
    """``sqlite:PATH`` → ``SQLiteStateStore``; ``redis://…`` / ``rediss://…`` / ``unix://…`` → ``RedisStateStore``."""
    if spec.startswith("sqlite:"):
        path = spec.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ConfigError("state store 'sqlite:' needs a file path, e.g. sqlite:state/events.db")
        return SQLiteStateStore(Path(path))
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStateStore(spec)
    raise ConfigError(f"unknown state store {spec!r}: use sqlite:PATH or redis://HOST:PORT/DB")
