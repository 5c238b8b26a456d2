"""A batch of requests in internal ids (users, fresh histories, exclusions and filters, ready for the stages), and
the slates the pipeline answers it with, in internal ids."""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.idmap import IdMap
from rankstack.errors import RequestError
from rankstack.pipeline.api import RecommendRequest, StageStatus
from rankstack.reranking.catalog import ItemCatalog, UnknownAttributeError
from rankstack.state.store import StateStore, recent_items_many


@dataclass
class RequestBatch:
    """Row b is request b: ``user_ids[b]`` internal (-1 = unknown user), ``ks[b]`` its slate length,
    ``user_keys[b]`` its external user id (the key of the state store and of the exploration draws),
    ``histories[b]`` oldest first, ``blocked[b]`` items it must not get, ``allowed[b]`` its filter mask (None: all),
    ``times[b]`` when it was made (epoch seconds; NaN unknown; None: untimed batch)."""

    user_ids: np.ndarray
    ks: np.ndarray
    request_ids: list[str]
    user_keys: list[str]
    histories: list[np.ndarray]
    blocked: list[np.ndarray]
    allowed: list[np.ndarray | None]
    contexts: list[dict[str, Any]]
    stages: list[dict[str, StageStatus]] = field(default_factory=list)
    times: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_ids)

    def mark(self, stage: str, status: StageStatus, rows: Collection[int] | None = None) -> None:
        """Set ``stage``'s status on ``rows`` (default: every row)."""
        for row in range(len(self)) if rows is None else rows:
            self.stages[row][stage] = status


@dataclass
class SlateBatch:
    """The slates of a batch in internal ids, row b for request b: ``item_ids[b, :lengths[b]]`` in slot order
    (``PAD_ITEM`` after), their final ``scores`` (NaN after) and logging ``propensities`` (None for every row when
    the policy is deterministic), each row's stage statuses and fallback, and the batch's stage times (ms)."""

    item_ids: np.ndarray
    scores: np.ndarray
    propensities: np.ndarray | None
    lengths: np.ndarray
    request_ids: list[str]
    stages: list[dict[str, StageStatus]]
    fallback: list[str | None]
    stage_ms: dict[str, float]


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
    keys = [r.user_id for r in reqs]
    users = user_map.to_internal(keys, strict=False)
    stages: list[dict[str, StageStatus]] = [{} for _ in reqs]
    histories, blocked, allowed = [], [], []
    fresh_rows = _recent(state, keys, history_len, item_map)
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
    ks = np.array([r.k for r in reqs], dtype=np.int64)
    now = time.time()
    times = np.array([now if r.time is None else r.time for r in reqs], dtype=np.float64)
    return RequestBatch(users, ks, request_ids, keys, histories, blocked, allowed, [r.context for r in reqs], stages,
                        times)


def internal_batch(
    user_ids: np.ndarray,
    ks: np.ndarray,
    state: StateStore | None,
    *,
    user_map: IdMap,
    item_map: IdMap,
    train_histories: Sequence[np.ndarray],
    history_len: int,
    request_ids: Sequence[str] | None = None,
    contexts: Sequence[dict[str, Any]] | None = None,
    times: np.ndarray | None = None,
) -> RequestBatch:
    """A batch of known users by internal id: each one's training sequence plus its fresh state (its external id is
    read from ``user_map`` only as the state store's key and the exploration draws' key); ``times`` [B] the
    requests' times (epoch seconds) when known."""
    n = len(user_ids)
    if n and (int(user_ids.min()) < 0 or int(user_ids.max()) >= len(user_map)):
        raise ValueError(f"user_ids: internal user ids must lie in [0, {len(user_map)}), got "
                         f"{int(user_ids.min())} … {int(user_ids.max())}")
    for name, given in (("ks", ks), ("request_ids", request_ids), ("contexts", contexts), ("times", times)):
        if given is not None and len(given) != n:
            raise ValueError(f"{name}: expected one per user ({n}), got {len(given)}")
    keys = [str(u) for u in user_map.to_external_list(user_ids)]
    fresh_rows = _recent(state, keys, history_len, item_map) if state is not None else None
    stages: list[dict[str, StageStatus]] = [{} for _ in range(n)]
    histories, blocked = [], []
    empty = np.zeros(0, np.int64)
    for row, user in enumerate(user_ids.tolist()):
        fresh = empty if fresh_rows is None else fresh_rows[row]
        if state is not None:
            stages[row]["state"] = "degraded" if fresh_rows is None else "ran"
        past = train_histories[user][-history_len:]
        histories.append(np.concatenate([past, fresh]).astype(np.int64)[-history_len:] if len(fresh) else
                         np.asarray(past, np.int64))
        blocked.append(np.unique(fresh) if len(fresh) else empty)
    ids = list(request_ids) if request_ids is not None else [secrets.token_hex(8) for _ in range(n)]
    return RequestBatch(user_ids, ks, ids, keys, histories, blocked, [None] * n,
                        [dict(c) for c in contexts] if contexts is not None else [{} for _ in range(n)], stages,
                        None if times is None else np.asarray(times, np.float64))
