"""Online state for serving: recent histories, exposure counts and bandit statistics (SQLite or Redis); a
``--state`` URL is opened by ``rankstack.pipeline.components.open_state``."""

from __future__ import annotations

from rankstack.state.base import StateStoreError
from rankstack.state.redis_store import RedisStateStore
from rankstack.state.sqlite import SQLiteStateStore

__all__ = ["RedisStateStore", "SQLiteStateStore", "StateStoreError"]
