"""Online state for serving: recent histories, exposure counts and bandit statistics (SQLite or Redis); a
``--state`` URL is opened by ``rankstack.pipeline.components.open_state``.

The interface is ``rankstack.state.store.StateStore``. The stores below are imported on first use
(``rankstack.lazy_exports``), so reading the interface does not import the Redis client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.state.redis_store import RedisStateStore
    from rankstack.state.shared import StateStoreError
    from rankstack.state.sqlite import SQLiteStateStore

_HOME = {"StateStoreError": "shared", "RedisStateStore": "redis_store", "SQLiteStateStore": "sqlite"}

__all__ = ["RedisStateStore", "SQLiteStateStore", "StateStoreError"]


__getattr__ = lazy_getattr(__name__, _HOME)
