"""A batch of requests in internal ids: users, fresh histories, exclusions and filters, ready for the stages."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from rankstack.data.idmap import IdMap
from rankstack.errors import RequestError
from rankstack.pipeline.api import RecommendRequest, StageStatus
from rankstack.reranking.catalog import ItemCatalog, UnknownAttributeError
from rankstack.state.protocol import StateStore, recent_items_many


@dataclass
class RequestBatch:
    """Row b is request b: ``user_ids[b]`` internal (-1 = unknown user), ``histories[b]`` oldest first."""

    requests: list[RecommendRequest]
    request_ids: list[str]
    user_ids: np.ndarray
    histories: list[np.ndarray]
    blocked: list[np.ndarray]
    allowed: list[np.ndarray | None]
    stages: list[dict[str, StageStatus]] = field(default_factory=list)

    @property
    def ks(self) -> np.ndarray:
        """Requested slate length per row."""
        return np.array([r.k for r in self.requests], dtype=np.int64)

    def mark(self, stage: str, status: StageStatus, rows: Collection[int] | None = None) -> None:
        """Set ``stage``'s status on ``rows`` (default: every row)."""
        for row in range(len(self.requests)) if rows is None else rows:
            self.stages[row][stage] = status


class ItemFilters:
    """Allowed-item masks for request filters ``{attribute: [values]}``, cached per distinct filter."""

    def __init__(self, catalog: ItemCatalog | None, n_items: int) -> None:
        self.catalog = catalog
        self.n_items = n_items
        self._cache: dict[tuple[str, frozenset[str]], np.ndarray] = {}

    def _one(self, attribute: str, values: frozenset[str]) -> np.ndarray:
        key = (attribute, values)
        if key not in self._cache:
            if self.catalog is None:
                raise RequestError(f"filters.{attribute}: this pipeline has no item attributes to filter on")
            try:
                column = self.catalog.column(attribute)
            except UnknownAttributeError as exc:
                raise RequestError(f"filters.{attribute}: {exc}") from None
            listed = [v if isinstance(v, list) else [v] for v in column.to_list()]
            self._cache[key] = np.array([any(str(x) in values for x in (v or []) if x is not None)
                                         for v in listed], dtype=bool)
        return self._cache[key]

    def mask(self, filters: dict[str, list[str]]) -> np.ndarray | None:
        """Items passing every filter (an item passes one when any of its values is listed); None = all."""
        out: np.ndarray | None = None
        for attribute, values in filters.items():
            one = self._one(attribute, frozenset(str(v) for v in values))
            out = one if out is None else out & one
        return out


def _recent(state: StateStore | None, users: list[str], n: int, item_map: IdMap) -> list[np.ndarray] | None:
    """Each user's fresh clicks/conversions from the state store in one batched read, as internal ids (unknown
    items dropped); None when the store failed."""
    if state is None:
        return [np.zeros(0, np.int64) for _ in users]
    try:
        recent = recent_items_many(state, users, n)
    except Exception:  # the store is down: serve from the trained history alone
        return None
    flat = [item for items in recent for item in items]
    ids = item_map.to_internal(flat, strict=False) if flat else np.zeros(0, np.int64)
    out, at = [], 0
    for items in recent:
        row = np.asarray(ids[at: at + len(items)], dtype=np.int64)
        out.append(row[row >= 0])
        at += len(items)
    return out


def build_batch(
    requests: Sequence[RecommendRequest],
    state: StateStore | None,
    *,
    user_map: IdMap,
    item_map: IdMap,
    train_histories: Sequence[np.ndarray],
    history_len: int,
    filters: ItemFilters,
) -> RequestBatch:
    """Map external ids to internal ones and gather each user's history (training sequence + fresh state)."""
    reqs = list(requests)
    users = user_map.to_internal([r.user_id for r in reqs], strict=False)
    stages: list[dict[str, StageStatus]] = [{} for _ in reqs]
    histories, blocked, allowed = [], [], []
    fresh_rows = _recent(state, [r.user_id for r in reqs], history_len, item_map)
    for row, (req, user) in enumerate(zip(reqs, users, strict=True)):
        past = train_histories[user][-history_len:] if user >= 0 else np.zeros(0, np.int64)
        fresh = np.zeros(0, np.int64) if fresh_rows is None else fresh_rows[row]
        if state is not None:
            stages[row]["state"] = "degraded" if fresh_rows is None else "ran"
        histories.append(np.concatenate([past, fresh]).astype(np.int64)[-history_len:])
        excluded = item_map.to_internal(req.exclude, strict=False) if req.exclude else np.zeros(0, np.int64)
        blocked.append(np.unique(np.concatenate([excluded[excluded >= 0], fresh])))
        allowed.append(filters.mask(req.filters) if req.filters else None)
    request_ids = [r.request_id or secrets.token_hex(8) for r in reqs]
    return RequestBatch(reqs, request_ids, users, histories, blocked, allowed, stages)
