"""The library's state-store conformance suite, run on every built-in store: SQLite always, Redis when
redis-server exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rankstack.state import RedisStateStore, SQLiteStateStore
from rankstack.testing.state_stores import StateStoreConformance, StoreFactory


class TestBuiltInStores(StateStoreConformance):
    @pytest.fixture(params=["sqlite", "redis"])
    def make_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
        """Fresh, empty stores of one kind (Redis ones share a server, each with its own key prefix)."""
        counter = itertools.count()
        made: list[Any] = []
        if request.param == "sqlite":
            def factory() -> Any:
                made.append(SQLiteStateStore(tmp_path / f"state{next(counter)}.db"))
                return made[-1]
        else:
            server = request.getfixturevalue("redis_server")

            def factory() -> Any:
                made.append(RedisStateStore(server.url, prefix=f"t{next(counter)}:"))
                return made[-1]
        yield factory
        for store in made:
            store.close()
