"""Online state for serving: recent histories, exposure counts and bandit statistics (SQLite or Redis).

The interface is ``rankstack.state.protocol.StateStore``. The stores below are imported on first use
(``rankstack.lazy_exports``), so reading the interface does not import the Redis client."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rankstack.errors import ConfigError
from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.state.base import StateStoreError
    from rankstack.state.protocol import StateStore
    from rankstack.state.redis_store import RedisStateStore
    from rankstack.state.sqlite import SQLiteStateStore

_HOME = {"StateStoreError": "base", "RedisStateStore": "redis_store", "SQLiteStateStore": "sqlite"}

__all__ = ["RedisStateStore", "SQLiteStateStore", "StateStoreError", "open_state"]


def open_state(spec: str) -> StateStore:
    """``sqlite:PATH`` → ``SQLiteStateStore``; ``redis://…`` / ``rediss://…`` / ``unix://…`` → ``RedisStateStore``."""
    if spec.startswith("sqlite:"):
        from rankstack.state.sqlite import SQLiteStateStore

        path = spec.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ConfigError("state store 'sqlite:' needs a file path, e.g. sqlite:state/events.db")
        return SQLiteStateStore(Path(path))
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from rankstack.state.redis_store import RedisStateStore

        return RedisStateStore(spec)
    raise ConfigError(f"unknown state store {spec!r}: use sqlite:PATH or redis://HOST:PORT/DB")


__getattr__ = lazy_getattr(__name__, _HOME)
