"""The online state store seen through the re-rank rules' ``ExposureStore`` (frequency caps, history filters)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from rankstack.data.idmap import IdMap
from rankstack.pipeline.api import StateStore

if TYPE_CHECKING:
    from rankstack.pipeline.batch import RequestBatch


class RowExposure:
    """``counts(row, …)`` for batch row ``row``: asks the state store about that request's external user and
    maps its item ids to internal ones (unknown items dropped). No store, or a failing one: no counts."""

    def __init__(self, batch: RequestBatch, state: StateStore | None, item_map: IdMap) -> None:
        self.batch = batch
        self.state = state
        self.item_map = item_map

    def counts(self, user_id: int, *, since: float, events: Collection[str]) -> dict[int, int]:
        """Internal item id → the request's user's events of a kind in ``events`` at or after ``since``."""
        if self.state is None:
            return {}
        user = self.batch.requests[int(user_id)].user_id
        try:
            raw = self.state.exposure_counts(user, since=since, events=tuple(events))
        except Exception:  # the store is down: serve without caps rather than fail the request
            self.batch.stages[int(user_id)]["state"] = "degraded"
            return {}
        if not raw:
            return {}
        keys = list(raw)
        ids = self.item_map.to_internal(keys, strict=False)
        return {int(i): int(raw[k]) for i, k in zip(ids, keys, strict=True) if i >= 0}
