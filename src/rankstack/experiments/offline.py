"""Offline evaluation and log replay through the pipeline's recommend code path (``recommend_batch`` on internal
ids, or ``recommend`` on requests built from a held-out split or a time-ordered event log), so offline metrics come
from the same stages the service runs; and the one evaluation of anything that scores the catalog or recommends."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import cast

import numpy as np
import polars as pl

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator, Scorer
from rankstack.events import Event
from rankstack.pipeline.api import Recommender, RecommendRequest, RecommendResponse
from rankstack.pipeline.pipeline import Pipeline
from rankstack.progress import new_progress
from rankstack.ranking.candidate_features import request_times
from rankstack.state.store import StateStore


def held_out_users(held_out: Dataset) -> np.ndarray:
    """Internal ids of the users with a held-out event, ascending."""
    return np.unique(held_out.events.get_column("user_id").to_numpy()).astype(np.int64)


def held_out_times(held_out: Dataset, users: np.ndarray) -> np.ndarray:
    """Each user's request time offline: its first held-out event's time (epoch seconds; NaN without times)."""
    return request_times(held_out.events, held_out.n_users)[users]


def requests_for(held_out: Dataset, k: int, *, prefix: str = "offline") -> list[RecommendRequest]:
    """One request per user with a held-out event (external ids; request id ``<prefix>-<user>`` is stable; timed
    at its first held-out event when the log has times)."""
    users = held_out_users(held_out)
    external = [str(u) for u in held_out.user_map.to_external(users).to_list()]
    times = held_out_times(held_out, users)
    return [RecommendRequest(user_id=u, k=k, request_id=f"{prefix}-{u}", time=None if np.isnan(t) else float(t))
            for u, t in zip(external, times.tolist(), strict=True)]


def same_ids(pipeline: Pipeline, dataset: Dataset) -> bool:
    """Whether the pipeline's internal user and item ids are the dataset's (so slates need no id conversion)."""
    p = pipeline.parts
    return (p.user_map is dataset.user_map or p.user_map == dataset.user_map) and \
        (p.item_map is dataset.item_map or p.item_map == dataset.item_map)


def pipeline_slates(pipeline: Pipeline, held_out: Dataset, k: int, *, batch_size: int = 256,
                    progress: bool = False, prefix: str = "offline") -> np.ndarray:
    """Internal-id slates [n_users, k] (row = user id, -1 pads) of every held-out user from ``recommend_batch``,
    per-stage deadlines off, with the request ids and times of :func:`requests_for` (the same exploration draws)."""
    users = held_out_users(held_out)
    times = held_out_times(held_out, users)
    request_ids = [f"{prefix}-{u}" for u in held_out.user_map.to_external(users).to_list()]
    recs = np.full((held_out.n_users, k), PAD_ITEM, np.int64)
    with new_progress() as bar:
        task = bar.add_task("recommending", total=len(users)) if progress else None
        for start in range(0, len(users), batch_size):
            chunk = users[start: start + batch_size]
            slates = pipeline.recommend_batch(chunk, k, request_ids=request_ids[start: start + batch_size],
                                              stage_deadlines=False, times=times[start: start + batch_size])
            recs[chunk] = slates.item_ids[:, :k]
            if task is not None:
                bar.advance(task, len(chunk))
    return recs


def _offline_options(recommender: Recommender) -> dict[str, bool]:
    """Per-stage deadlines off when the recommender allows it: offline runs must not depend on machine load."""
    accepts = "stage_deadlines" in inspect.signature(recommender.recommend).parameters
    return {"stage_deadlines": False} if accepts else {}


def replay(recommender: Recommender, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
           batch_size: int = 256, progress: bool = False) -> Iterator[RecommendResponse]:
    """``recommend`` over ``requests`` in batches (per-stage deadlines off when the recommender allows it)."""
    extra = _offline_options(recommender)
    with new_progress() as bar:
        task = bar.add_task("replaying requests", total=len(requests)) if progress else None
        for start in range(0, len(requests), batch_size):
            chunk = requests[start: start + batch_size]
            out = recommender.recommend(chunk, state, **extra)
            yield from out
            if task is not None:
                bar.advance(task, len(chunk))


def slates_matrix(responses: Sequence[RecommendResponse], dataset: Dataset, k: int) -> np.ndarray:
    """Internal-id slates [n_users, k] (row = user id, -1 pads) from responses in external ids."""
    recs = np.full((dataset.n_users, k), PAD_ITEM, np.int64)
    if not responses:
        return recs
    users = dataset.user_map.to_internal([r.user_id for r in responses], strict=False)
    items = dataset.item_map.to_internal([i.item_id for r in responses for i in r.items], strict=False)
    at = 0
    for user, response in zip(users, responses, strict=True):
        row = items[at: at + len(response.items)][:k]
        at += len(response.items)
        if user >= 0:
            recs[user, : len(row)] = row
    return recs


def recommended_slates(recommender: Recommender, held_out: Dataset, k: int, *, batch_size: int = 256,
                       progress: bool = False) -> np.ndarray:
    """Internal-id slates [n_users, k] of every held-out user: from ``recommend_batch`` when the recommender is a
    pipeline over the held-out data's ids, else from ``recommend`` on one request per user."""
    if isinstance(recommender, Pipeline) and same_ids(recommender, held_out):
        return pipeline_slates(recommender, held_out, k, batch_size=batch_size, progress=progress)
    responses = list(replay(recommender, requests_for(held_out, k), batch_size=batch_size, progress=progress))
    return slates_matrix(responses, held_out, k)


def evaluate_model(model: Scorer | Recommender, train: Dataset, held_out: Dataset, ks: Sequence[int], *,
                   evaluator: Evaluator | None = None, batch_size: int = 256, progress: bool = False,
                   device: str | None = None) -> dict[str, float]:
    """Full-ranking metrics on a split of anything that scores the whole catalog (a candidate source or ranker:
    ``score``) or recommends slates (a pipeline or another ``Recommender``: its top max(ks)); ``evaluator``
    reuses one built for the same split."""
    evaluator = evaluator or Evaluator.from_datasets(train, held_out, ks=ks, device=device, progress=progress)
    if hasattr(model, "recommend"):
        return evaluator.evaluate_recs(recommended_slates(cast(Recommender, model), held_out, max(ks),
                                                          batch_size=batch_size, progress=progress))
    return evaluator.evaluate(cast(Scorer, model))


def evaluate_recommender(recommender: Recommender, train: Dataset, held_out: Dataset, ks: Sequence[int], *,
                         batch_size: int = 256, progress: bool = False) -> dict[str, float]:
    """Full-ranking metrics of the slates the recommender returns for every held-out user (top max(ks))."""
    return evaluate_model(recommender, train, held_out, ks, batch_size=batch_size, progress=progress)


def replay_log(recommender: Recommender, events: Dataset, state: StateStore, k: int, *,
               limit: int | None = None, progress: bool = False) -> dict[str, float]:
    """Time-ordered backtest: before each positive event, ask for the user's slate given the state so far
    (a hit when the event's item is in it), then write the event to ``state`` as a click.

    Returns hr@k over the replayed events and their count. Sequential by design: each slate sees every
    earlier event, as the service would.
    """
    ev = events.positive_events().with_row_index("_row").sort(["timestamp", "_row"], nulls_last=True)
    if limit is not None:
        ev = ev.head(limit)
    users = [str(u) for u in events.user_map.to_external(ev.get_column("user_id").to_numpy()).to_list()]
    items = [str(i) for i in events.item_map.to_external(ev.get_column("item_id").to_numpy()).to_list()]
    times = (ev.get_column("timestamp").dt.timestamp("us").cast(pl.Float64) / 1e6).to_list()  # epoch seconds
    hits = 0
    extra = _offline_options(recommender)
    with new_progress() as bar:
        task = bar.add_task("replaying the log", total=len(users)) if progress else None
        for n, (user, item, when) in enumerate(zip(users, items, times, strict=True)):
            (response,) = recommender.recommend([RecommendRequest(user_id=user, k=k, request_id=f"replay-{n}")], state,
                                                **extra)
            hits += any(s.item_id == item for s in response.items)
            state.add_events([Event(event_id=f"replay-{n}", user_id=user, item_id=item, event="click",
                                    request_id=response.request_id, timestamp=when)])
            if task is not None:
                bar.advance(task)
    return {f"hr@{k}": hits / max(len(users), 1), "events": float(len(users))}
