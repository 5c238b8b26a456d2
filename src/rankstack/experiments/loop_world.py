"""The closed loop's world: a marketplace simulator, the pipeline trained on its history log, and the pipeline
served to simulated traffic through ``Pipeline.recommend_batch`` (the service's code path) as a simulator policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.bandits.logging_policies import logging_policy
from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.config import ExplorationStage, PipelineConfig, validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.simulation.log import SimulationLog
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS, SimulatorConfig
from rankstack.simulation.world import Requests
from rankstack.value.objective import ValueObjective

Log = Callable[[str], None]

# configs/pipelines/simulator.yaml's marketplace pipeline, narrower: retrieval → multi-task ranker → value → exploration
PIPELINE: dict[str, Any] = {
    "name": "loop",
    "data": {"name": "loop-history", "split": "temporal", "eval_on": "test"},
    "sources": [{"name": "popular", "k": 30, "quota": 5, "weight": 0.3},
                {"name": "itemknn", "settings": {"neighbors": 50}, "k": 60, "quota": 15, "weight": 1.0}],
    "merge": {"k": 30, "rrf_k": 60},  # 30 candidates ranked per request (100 in simulator.yaml): the loop serves ~1M
    "ranker": {"kind": "multitask", "model": {"epochs": 10, "batch_size": 256, "embedding_dim": 8, "patience": 1,
                                              "seed": 0},
               "order_by": {"name": "expected_revenue", "terms": [{"weight": 1.0, "factors": ["click", "cvr",
                                                                                              "payout"]}]}},
    "value": {"normalize": False, "objective": ValueObjective.revenue_plus_clicks(0.5).model_dump(mode="json")},
    "exploration": {"policy": "greedy"},
}


@dataclass
class LoopWorld:
    """One seeded world: the simulator, the history log's dataset and the pipeline trained on it."""

    sim: MarketplaceSimulator
    dataset: Dataset
    pipeline: Pipeline
    user_to_internal: np.ndarray
    item_to_sim: np.ndarray
    train_s: float

    def variant(self, click_weight: float, exploration: ExplorationStage) -> Pipeline:
        """The trained pipeline under value objective revenue + ``click_weight``·click and ``exploration``."""
        config = self.pipeline.config
        assert config.value is not None
        value = config.value.model_copy(update={"objective": ValueObjective.revenue_plus_clicks(click_weight)})
        return self.pipeline.with_config(config.model_copy(update={"value": value, "exploration": exploration}))


def build_world(sim_config: SimulatorConfig, *, log: Log | None = None, epochs: int = 10) -> LoopWorld:
    """Simulate the history log under the simulator's own logging policy and fit the marketplace pipeline on it."""
    say = log or (lambda _msg: None)
    sim = MarketplaceSimulator(sim_config)
    history = sim.run(logging_policy(sim))
    dataset = history.to_dataset("loop-history")
    raw = {**PIPELINE, "ranker": {**PIPELINE["ranker"], "model": {**PIPELINE["ranker"]["model"], "epochs": epochs}}}
    config: PipelineConfig = validate_pipeline_config(raw)
    t0 = time.perf_counter()
    parts = fit_stages(config, dataset, say)
    train_s = time.perf_counter() - t0
    users = dataset.user_map.to_internal([int(u) for u in range(sim.world.n_users)], strict=False)
    items = np.array([int(i) for i in dataset.item_map.to_external(np.arange(dataset.n_items)).to_list()], np.int64)
    return LoopWorld(sim, dataset, Pipeline(parts), np.asarray(users, np.int64), items, train_s)


def contexts(req: Requests) -> list[dict[str, Any]]:
    """The request context the pipeline's ranker reads: device, placement, hour."""
    return [{"device": DEVICES[d], "placement": PLACEMENTS[p], "hour": int(h)}
            for d, p, h in zip(req.device.tolist(), req.placement.tolist(), req.hour.tolist(), strict=True)]


def serve(world: LoopWorld, pipeline: Pipeline, req: Requests, k: int, request_ids: list[str]
          ) -> tuple[np.ndarray, np.ndarray]:
    """(simulator item ids [n, k], per-slot propensities [n, k], 1 where the pipeline is greedy) of ``pipeline``'s
    slates for ``req``: ``recommend_batch`` for users the pipeline knows, ``recommend`` (popularity) for the rest."""
    n = len(req)
    users = world.user_to_internal[req.users]
    items = np.full((n, k), -1, np.int64)
    props = np.ones((n, k))
    ctx = contexts(req)
    known = np.flatnonzero(users >= 0)
    if len(known):
        slates = pipeline.recommend_batch(users[known], k, request_ids=[request_ids[r] for r in known],
                                          contexts=[ctx[r] for r in known], stage_deadlines=False)
        if (slates.lengths != k).any():
            raise ValueError(f"the pipeline returned slates shorter than k = {k}")
        items[known] = world.item_to_sim[slates.item_ids[:, :k]]
        if slates.propensities is not None:
            props[known] = slates.propensities[:, :k]
    for row in np.flatnonzero(users < 0).tolist():
        [response] = pipeline.recommend([RecommendRequest(user_id=str(int(req.users[row])), k=k, context=ctx[row],
                                                          request_id=request_ids[row])], stage_deadlines=False)
        if len(response.items) != k:
            raise ValueError(f"the pipeline returned a slate shorter than k = {k}")
        items[row] = [int(i.item_id) for i in response.items]
        props[row] = [1.0 if i.propensity is None else i.propensity for i in response.items]
    return items, props


class ServedPipeline:
    """A pipeline as the simulator's logging policy: each simulated request goes through ``recommend_batch`` with
    request id ``<prefix><request index>`` (the key of its exploration draws)."""

    def __init__(self, world: LoopWorld, pipeline: Pipeline, k: int, prefix: str) -> None:
        self.world, self.pipeline, self.k, self.prefix = world, pipeline, k, prefix
        self.served = 0

    def choose(self, req: Requests, eligible: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The pipeline's slates and per-slot propensities for the next ``len(req)`` requests."""
        ids = request_ids(self.prefix, np.arange(self.served, self.served + len(req)))
        self.served += len(req)
        return serve(self.world, self.pipeline, req, self.k, ids)


def request_ids(prefix: str, index: np.ndarray) -> list[str]:
    """``<prefix><i>`` for every request index."""
    return [f"{prefix}{i}" for i in index.tolist()]


@dataclass(frozen=True)
class LoggedSlates:
    """A simulated log per request: requests, their ids, slates [n, k] (simulator ids), logged per-slot
    propensities, realised clicks and revenue, and the simulator's true expected clicks and revenue [n, k]."""

    requests: Requests
    request_ids: list[str]
    items: np.ndarray
    propensity: np.ndarray
    clicks: np.ndarray
    revenue: np.ndarray
    true_clicks: np.ndarray
    true_revenue: np.ndarray
    exposures: np.ndarray

    def reward(self, metric: str) -> np.ndarray:
        """Logged per-slot rewards [n, k] of ``metric`` (clicks or revenue)."""
        return self.clicks if metric == "clicks" else self.revenue

    def truth(self, metric: str) -> np.ndarray:
        """The simulator's true expected per-slot rewards [n, k] (never seen by an estimator)."""
        return self.true_clicks if metric == "clicks" else self.true_revenue


def run_traffic(world: LoopWorld, pipeline: Pipeline, *, rounds: int, k: int, traffic_seed: int, prefix: str
                ) -> LoggedSlates:
    """Serve ``rounds`` fresh simulated requests with ``pipeline`` and log what happened, per request."""
    policy = ServedPipeline(world, pipeline, k, prefix)
    out: SimulationLog = world.sim.run(policy, traffic_seed=traffic_seed, n_impressions=rounds * k)
    shape = (rounds, k)
    first = np.arange(0, rounds * k, k)
    req = Requests(out.user[first], out.t_frac[first], out.hour[first], out.device[first], out.placement[first])
    payout = world.sim.world.item_payout[out.item]
    return LoggedSlates(
        requests=req, request_ids=request_ids(prefix, out.request[first]), items=out.item.reshape(shape),
        propensity=out.propensity.reshape(shape), clicks=out.click.reshape(shape).astype(np.float64),
        revenue=out.revenue.reshape(shape), true_clicks=out.p_click.reshape(shape),
        true_revenue=(out.p_click * out.p_conversion * payout).reshape(shape), exposures=out.exposures.reshape(shape),
    )
