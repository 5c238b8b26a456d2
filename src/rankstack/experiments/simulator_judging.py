"""Judge a pipeline's slates with the marketplace simulator's ground truth, through the pipeline's recommend path.

Logged requests of the held-out window are replayed (same user, context and request id); each slate's true
expected clicks, conversions and revenue come from the simulator's world, slot effects and fatigue included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.experiments.offline import same_ids
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline
from rankstack.ranking.impressions import impression_table
from rankstack.simulation.log import SIM_CONTEXT
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.slates import earlier_exposures, simulator_requests


def logged_requests(held_out: Dataset, limit: int, seed: int = 0) -> pl.DataFrame:
    """Up to ``limit`` distinct requests of ``held_out``'s impressions: request_id, timestamp, user_id, context."""
    shown = held_out.events.filter(pl.col("event") == "impression")
    requests = shown.group_by("request_id", maintain_order=True).first()
    if requests.height > limit:
        requests = requests.sample(limit, seed=seed)
    return requests.sort("timestamp").select("request_id", "timestamp", "user_id", *SIM_CONTEXT)


def as_recommend_requests(dataset: Dataset, requests: pl.DataFrame, k: int) -> list[RecommendRequest]:
    """One ``RecommendRequest`` per logged request: external user id, its context and request id."""
    users = dataset.user_map.to_external(requests.get_column("user_id").to_numpy()).to_list()
    out = []
    for user, row in zip(users, requests.iter_rows(named=True), strict=True):
        context: dict[str, Any] = {c: row[c] for c in SIM_CONTEXT}
        out.append(RecommendRequest(user_id=str(user), k=k, context=context, request_id=str(row["request_id"])))
    return out


def served_slates(pipeline: Pipeline, dataset: Dataset, requests: pl.DataFrame,
                  k: int) -> tuple[np.ndarray, list[bool]]:
    """The pipeline's slates for ``requests`` in ``dataset``'s internal item ids [n, k] and whether each request's
    ranker ran: from ``recommend_batch`` when the pipeline shares the dataset's ids, else from ``recommend``."""
    if same_ids(pipeline, dataset):
        contexts = [{c: row[c] for c in SIM_CONTEXT} for row in requests.select(*SIM_CONTEXT).iter_rows(named=True)]
        slates = pipeline.recommend_batch(requests.get_column("user_id").to_numpy(), k,
                                          request_ids=[str(r) for r in requests.get_column("request_id").to_list()],
                                          contexts=contexts, stage_deadlines=False)
        if (slates.lengths != k).any():
            raise ValueError(f"every slate must hold k = {k} items to be judged")
        return slates.item_ids, [stages.get("ranker") == "ran" for stages in slates.stages]
    responses = pipeline.recommend(as_recommend_requests(dataset, requests, k), stage_deadlines=False)
    if any(len(r.items) != k for r in responses):
        raise ValueError(f"every slate must hold k = {k} items to be judged")
    items = [i.item_id for r in responses for i in r.items]
    internal = dataset.item_map.to_internal(items).reshape(len(responses), k)
    return internal, [r.stages.get("ranker") == "ran" for r in responses]


def judge_slates(pipeline: Pipeline, sim: MarketplaceSimulator, dataset: Dataset, requests: pl.DataFrame,
                 k: int) -> dict[str, float]:
    """True expected revenue / clicks / conversions per 1,000 impressions of the pipeline's slates for
    ``requests`` (from :func:`logged_requests`), and the share of requests whose ranker ran."""
    internal, ranker_ran = served_slates(pipeline, dataset, requests, k)
    external = np.array([int(i) for i in dataset.item_map.to_external(internal.ravel()).to_list()],
                        dtype=np.int64).reshape(internal.shape)
    exposures = earlier_exposures(impression_table(dataset), requests.get_column("user_id").to_numpy().astype(np.int64),
                                  internal, requests.get_column("timestamp"), dataset.n_items)
    totals = sim.expected_value(simulator_requests(sim, dataset, requests), external, exposures).per_request()
    shown = external.size
    return {
        "requests": float(len(ranker_ran)),
        "revenue_per_mille": 1000 * float(totals["revenue"].sum()) / shown,
        "clicks_per_mille": 1000 * float(totals["clicks"].sum()) / shown,
        "conversions_per_mille": 1000 * float(totals["conversions"].sum()) / shown,
        "ranker_ran": float(np.mean(ranker_ran)),
    }
