"""RowExposure and the batch builder read the state store once per batch, and degrade every row when it fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rankstack.data.idmap import IdMap
from rankstack.events import Event
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.batch import ItemFilters, build_batch
from rankstack.pipeline.state_exposure import RowExposure
from rankstack.state import SQLiteStateStore


class CountingStore:
    """A SQLite store that counts the calls of each read, or fails every read."""

    def __init__(self, path: Path, fail: bool = False) -> None:
        self.inner, self.fail, self.calls = SQLiteStateStore(path), fail, {"recent": 0, "exposure": 0}

    def add_events(self, events: Sequence[Event]) -> int:
        return self.inner.add_events(events)

    def recent_items_many(self, user_ids: Sequence[str], n: int, **kw: Any) -> list[list[str]]:
        self.calls["recent"] += 1
        if self.fail:
            raise OSError("store down")
        return self.inner.recent_items_many(user_ids, n, **kw)

    def exposure_counts_many(self, user_ids: Sequence[str], **kw: Any) -> list[dict[str, int]]:
        self.calls["exposure"] += 1
        if self.fail:
            raise OSError("store down")
        return self.inner.exposure_counts_many(user_ids, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


ITEMS = IdMap.fit(["a", "b", "c"])
USERS = IdMap.fit(["u1", "u2"])


def _batch(store: CountingStore) -> Any:
    reqs = [RecommendRequest(user_id=u, k=2) for u in ("u1", "u2", "ghost", "u1")]
    return build_batch(reqs, store, user_map=USERS, item_map=ITEMS,  # type: ignore[arg-type]
                       train_histories=[np.array([0]), np.array([1])], history_len=5,
                       filters=ItemFilters(None, len(ITEMS)))


@pytest.mark.parametrize("fail", [False, True])
def test_one_read_per_batch_and_every_row_degraded_on_failure(tmp_path: Path, fail: bool) -> None:
    store = CountingStore(tmp_path / "s.db", fail=fail)
    store.add_events([Event(event_id="1", user_id="u1", item_id="c", event="click", timestamp=10.0),
                      Event(event_id="2", user_id="u1", item_id="zzz", event="click", timestamp=11.0),
                      Event(event_id="3", user_id="u2", item_id="b", event="impression", timestamp=12.0),
                      Event(event_id="4", user_id="u2", item_id="b", event="impression", timestamp=13.0)])
    batch = _batch(store)
    exposure = RowExposure(batch, store, ITEMS)  # type: ignore[arg-type]
    counts = [exposure.counts(row, since=0.0, events=("impression",)) for row in range(4)]
    assert store.calls == {"recent": 1, "exposure": 1}
    if fail:
        assert counts == [{}] * 4 and all(s["state"] == "degraded" for s in batch.stages)
        assert [h.tolist() for h in batch.histories] == [[0], [1], [], [0]]
    else:
        assert counts == [{}, {1: 2}, {}, {}] and all(s["state"] == "ran" for s in batch.stages)
        assert [h.tolist() for h in batch.histories] == [[0, 2], [1], [], [0, 2]]  # the unknown item is dropped
    store.inner.close()
