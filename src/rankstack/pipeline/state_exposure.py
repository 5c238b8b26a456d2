"""The online state store seen through the re-rank rules' ``ExposureStore`` (frequency caps, history filters)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from rankstack.data.idmap import IdMap
from rankstack.state.store import StateStore, exposure_counts_many

if TYPE_CHECKING:
    from rankstack.pipeline.batch import RequestBatch


class RowExposure:
    """``counts(row, …)`` for batch row ``row``: the request's external user's counts from the state store, item
    ids mapped to internal ones (unknown items dropped). The first call reads every row of the batch at once
    (one batched read per ``since`` / ``events``). No store, or a failing one: no counts."""

    def __init__(self, batch: RequestBatch, state: StateStore | None, item_map: IdMap) -> None:
        self.batch = batch
        self.state = state
        self.item_map = item_map
        self._read: dict[tuple[float, tuple[str, ...]], list[dict[int, int]] | None] = {}

    def counts(self, user_id: int, *, since: float, events: Collection[str]) -> dict[int, int]:
        """Internal item id → the request's user's events of a kind in ``events`` at or after ``since``."""
        if self.state is None:
            return {}
        key = (since, tuple(events))
        if key not in self._read:
            self._read[key] = self._fetch(self.state, since, key[1])
        rows = self._read[key]
        if rows is None:  # the store is down: serve without caps rather than fail the request
            self.batch.stages[int(user_id)]["state"] = "degraded"
            return {}
        return rows[int(user_id)]

    def _fetch(self, state: StateStore, since: float, events: tuple[str, ...]) -> list[dict[int, int]] | None:
        """Every row's counts in internal ids, or None when the store failed."""
        try:
            raw = exposure_counts_many(state, self.batch.user_keys, since=since, events=events)
        except Exception:
            return None
        keys = [k for counts in raw for k in counts]
        ids = self.item_map.to_internal(keys, strict=False).tolist() if keys else []
        out, at = [], 0
        for counts in raw:
            out.append({i: int(c) for i, c in zip(ids[at: at + len(counts)], counts.values(), strict=True) if i >= 0})
            at += len(counts)
        return out
