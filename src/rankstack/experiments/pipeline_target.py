"""A trained pipeline as an off-policy target: its slate for every logged request, as ``action_dist`` on the log.

The pipeline is asked, through ``Pipeline.recommend`` with exploration off (greedy), for each logged request: the
request's user, a slate as long as the log's, the logged request id. Its slates are deterministic, so
π_e(a | x_i, l) = 1 for the item it puts at slot l. Items it shows that the log never shows are added to the action
axis (no IPS-type estimator sees them: ``never_logged_share`` says how much of its mass sits there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankstack.ope.bandit_log import BanditLog
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.integrity import MANIFEST
from rankstack.pipeline.pipeline import Pipeline

BATCH = 256


def is_artifact(spec: str) -> bool:
    """Whether ``spec`` is a pipeline artifact directory (it holds a manifest)."""
    return (Path(spec) / MANIFEST).is_file()


def greedy_slates(pipeline: Pipeline, log: BanditLog) -> dict[str, list[str]]:
    """The pipeline's greedy slate (external item ids, ``log.n_slots`` long) for every logged request id."""
    if log.request_ids is None or log.user_ids is None:
        raise ValueError("a pipeline target needs each logged impression's request_id and user_id")
    greedy = pipeline.with_config(pipeline.config.model_copy(update={"exploration": ExplorationStage(policy="greedy")}))
    first: dict[str, str] = {}
    for request, user in zip(log.request_ids.tolist(), log.user_ids.tolist(), strict=True):
        first.setdefault(str(request), str(user))
    requests = [RecommendRequest(user_id=user, k=log.n_slots, request_id=request) for request, user in first.items()]
    slates: dict[str, list[str]] = {}
    try:
        for start in range(0, len(requests), BATCH):
            for response in greedy.recommend(requests[start: start + BATCH], stage_deadlines=False):
                slates[response.request_id] = [item.item_id for item in response.items]
    finally:
        greedy.close()
    short = [r for r, s in slates.items() if len(s) < log.n_slots]
    if short:
        raise ValueError(f"the pipeline returned fewer than {log.n_slots} items for request {short[0]!r} (its "
                         "catalogue is smaller than the log's slates?)")
    return slates


def extended_axis(items: np.ndarray, slates: dict[str, list[str]]) -> np.ndarray:
    """The log's action axis plus the pipeline's items it never shows, in the log's id type."""
    known = {str(v) for v in items.tolist()}
    extra = sorted({i for slate in slates.values() for i in slate} - known)
    if not extra:
        return items
    kind = items.dtype
    added = np.asarray([int(i) for i in extra] if np.issubdtype(kind, np.integer) else extra, dtype=kind)
    return np.concatenate([items, added])


def pipeline_action_dist(log: BanditLog, slates: dict[str, list[str]]) -> tuple[np.ndarray, dict[str, Any]]:
    """π_e [rounds, actions, slots] (1 on the pipeline's item at each slot of the round's request) on ``log``'s axis,
    and how much of it falls on items the log never shows."""
    assert log.request_ids is not None
    index = {str(v): i for i, v in enumerate(log.items.tolist())}
    missing = sorted({i for s in slates.values() for i in s} - set(index))
    if missing:
        raise ValueError(f"item {missing[0]!r} of the pipeline is not on the log's action axis: extend it first")
    dist = np.zeros((log.n_rounds, log.n_actions, log.n_slots))
    logged = np.zeros(log.n_actions, dtype=bool)
    logged[np.unique(log.action)] = True
    never = 0.0
    for row, request in enumerate(log.request_ids.tolist()):
        columns = [index[i] for i in slates[str(request)][: log.n_slots]]
        dist[row, columns, np.arange(log.n_slots)] = 1.0
        never += float(np.mean(~logged[columns]))
    return dist, {"never_logged_share": never / max(log.n_rounds, 1), "requests": len(slates)}
