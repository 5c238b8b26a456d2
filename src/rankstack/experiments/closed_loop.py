"""The closed loop on the marketplace simulator: explore → log → estimate a candidate off-policy → deploy → compare.

Per seed: the current pipeline serves fresh simulated traffic with ε-greedy exploration through
``Pipeline.recommend_batch`` (the service's code path) and the simulator logs slates, per-slot propensities and
feedback; the candidate pipeline is run on the logged requests and its value estimated from the log alone; then
the candidate is deployed on other fresh traffic and its realised value is the simulator's true expected reward
of the slates it served. The world and the trained stages are shared by every seed (one training); seeds draw the
traffic, the exploration and the bootstrap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from rankstack.experiments.loop_estimates import (
    LoggedRounds,
    action_axis,
    estimate_all,
    slot_calibration,
    target_inputs,
)
from rankstack.experiments.loop_world import LoggedSlates, LoopWorld, contexts, run_traffic, serve
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.multitask_stage import MultiTaskStage
from rankstack.pipeline.pipeline import Pipeline
from rankstack.progress import track

Log = Callable[[str], None]
Metric = Literal["clicks", "revenue"]


@dataclass(frozen=True)
class LoopSettings:
    """What one loop run does (sizes, exploration, the pipelines compared, the estimator reported)."""

    seeds: int = 20
    rounds: int = 5_000
    deploy_rounds: int = 10_000
    slate: int = 5
    epsilon: float = 0.3
    pool: int = 10
    metric: Metric = "clicks"
    current_click_weight: float = 0.5
    candidate_click_weights: tuple[float, ...] = (2.0,)
    estimator: str = "independent DR"
    bootstrap: int = 200
    first_seed: int = 0
    support_sample: int = 200

    def __post_init__(self) -> None:
        checks = [
            (self.seeds >= 1, f"seeds must be at least 1, got {self.seeds}"),
            (self.rounds >= 1, f"rounds must be at least 1, got {self.rounds}"),
            (self.deploy_rounds >= 1, f"deploy rounds must be at least 1, got {self.deploy_rounds}"),
            (0.0 < self.epsilon <= 1.0, f"epsilon must lie in (0, 1], got {self.epsilon}"),
            (self.pool > self.slate, f"the exploration pool ({self.pool}) must exceed the slate ({self.slate})"),
            (self.metric in ("clicks", "revenue"), f"metric must be clicks or revenue, got {self.metric!r}"),
            (len(self.candidate_click_weights) >= 1, "at least one candidate click weight is needed"),
            (self.bootstrap >= 10, f"bootstrap must be at least 10 resamples, got {self.bootstrap}"),
            (self.first_seed >= 0, f"seeds must be >= 0, got {self.first_seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        from rankstack.experiments.loop_estimates import LOOP_ESTIMATORS

        if self.estimator not in LOOP_ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose from {', '.join(LOOP_ESTIMATORS)}")


def per_mille(per_request: float, slate: int) -> float:
    """A per-request (slate) value as a value per 1,000 impressions."""
    return 1000.0 * per_request / slate


def reward_model(world: LoopWorld, logged: LoggedSlates, actions: np.ndarray, metric: Metric) -> np.ndarray | None:
    """q̂(x, a) [n, 2k] of the pipeline's own multi-task ranker (trained on the history log, not on this log) for
    each round's actions; None when the pipeline has no multi-task ranker."""
    ranker = world.pipeline.parts.ranker
    if not isinstance(ranker, MultiTaskStage):
        return None
    users = world.user_to_internal[logged.requests.users]
    known_items = actions >= 0
    internal = np.full(actions.shape, -1, np.int64)
    lookup = np.full(int(world.item_to_sim.max()) + 1, -1, np.int64)
    lookup[world.item_to_sim] = np.arange(len(world.item_to_sim))
    internal[known_items] = lookup[actions[known_items]]
    head = "click" if metric == "clicks" else "revenue"
    preds = ranker.predict(users, internal, contexts(logged.requests), np.zeros(actions.shape),
                           world.pipeline.parts.sources)[head]
    return np.nan_to_num(preds, nan=0.0)


def support_deficit(world: LoopWorld, current: Pipeline, logged: LoggedSlates, target: np.ndarray,
                    settings: LoopSettings) -> dict[str, float]:
    """On the first ``support_sample`` logged requests: the share of the candidate's (item, slot) pairs outside the
    current pipeline's exploration pool (never logged: no estimator sees them), and how many logged propensities
    differ from ε-greedy's recomputed from the pool (must be 0)."""
    rows = np.arange(min(settings.support_sample, len(target)))
    if not len(rows):
        return {"support_deficit": float("nan"), "propensity_mismatches": 0, "checked_requests": 0}
    greedy = current.with_config(current.config.model_copy(update={"exploration": ExplorationStage(policy="greedy")}))
    req = logged.requests.take(rows)
    pool, _ = serve(world, greedy, req, settings.pool, [logged.request_ids[r] for r in rows])
    greedy.close()
    outside = ~(target[rows][:, :, None] == pool[:, None, :]).any(axis=2)
    items = logged.items[rows]
    explore = settings.epsilon / settings.pool
    in_pool = (items[:, :, None] == pool[:, None, :]).any(axis=2)
    recomputed = np.where(in_pool, explore + (1 - settings.epsilon) * (items == pool[:, : settings.slate]), 0.0)
    mismatch = ~np.isclose(recomputed, logged.propensity[rows], rtol=1e-9, atol=1e-12)
    return {"support_deficit": float(outside.mean()), "propensity_mismatches": int(mismatch.sum()),
            "checked_requests": len(rows)}


def one_seed(world: LoopWorld, settings: LoopSettings, seed: int, log: Log) -> dict[str, Any]:
    """Explore, log, estimate every candidate, deploy every candidate: one seed's record."""
    k, metric = settings.slate, settings.metric
    exploration = ExplorationStage(policy="epsilon_greedy", epsilon=settings.epsilon, pool=settings.pool, seed=seed)
    current = world.variant(settings.current_click_weight, exploration)
    t0 = time.perf_counter()
    logged = run_traffic(world, current, rounds=settings.rounds, k=k, traffic_seed=2 * seed, prefix=f"log{seed}-")
    rounds = LoggedRounds(logged.items, logged.propensity, logged.reward(metric), settings.epsilon, settings.pool)
    record: dict[str, Any] = {
        "seed": seed, "logged_requests": settings.rounds,
        "current_on_policy": per_mille(float(rounds.reward.sum(axis=1).mean()), k),
        "candidates": {},
    }
    for weight in settings.candidate_click_weights:
        candidate = world.variant(weight, ExplorationStage(policy="greedy"))
        target, _ = serve(world, candidate, logged.requests, k, logged.request_ids)
        actions, _ = action_axis(logged.items, target)
        q = reward_model(world, logged, actions, metric)
        q_actions = None
        if q is not None:
            q_actions = q[:, :, None] * slot_calibration(rounds.reward, q[:, :k])[None, None, :]
        slate_log, slate_tgt = target_inputs(rounds, target, q_actions)
        estimates = estimate_all(slate_log, slate_tgt, n_boot=settings.bootstrap, seed=seed)
        deployed = run_traffic(world, candidate, rounds=settings.deploy_rounds, k=k, traffic_seed=2 * seed + 1,
                               prefix=f"deploy{seed}-")
        candidate.close()
        per_request = deployed.truth(metric).sum(axis=1)
        realised = per_mille(float(per_request.mean()), k)
        oracle = world.sim.expected_value(logged.requests, target)
        oracle_value = oracle.clicks if metric == "clicks" else oracle.revenue
        row: dict[str, Any] = {
            "realised": realised,
            "realised_std_error": per_mille(float(per_request.std(ddof=1) / np.sqrt(len(per_request))), k)
            if len(per_request) > 1 else float("nan"),
            "realised_sampled": per_mille(float(deployed.reward(metric).sum(axis=1).mean()), k),
            "truth_on_logged_requests": per_mille(float(oracle_value.sum(axis=1).mean()), k),
            "slots_differing": float(np.mean(target != logged.items)),
            "estimators": {},
        }
        for name, est in estimates.items():
            value, lo, hi = (per_mille(v, k) for v in (est.value, est.lower, est.upper))
            row["estimators"][name] = {
                "estimate": value, "ci": [lo, hi], "std_error": per_mille(est.std_error, k),
                "relative_error": (value - realised) / realised if realised else float("nan"),
                "inside": bool(lo <= realised <= hi), "ess": est.ess, "max_weight": est.max_weight,
            }
        row.update(support_deficit(world, current, logged, target, settings) if weight ==
                   settings.candidate_click_weights[0] else {})
        record["candidates"][f"{weight:g}"] = row
    current.close()
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    head = record["candidates"][f"{settings.candidate_click_weights[0]:g}"]
    est = head["estimators"][settings.estimator]
    log(f"seed {seed}: {settings.estimator} {est['estimate']:.2f} [{est['ci'][0]:.2f}, {est['ci'][1]:.2f}], realised "
        f"{head['realised']:.2f} ({metric} per 1,000 impressions), relative error {est['relative_error']:+.3f}")
    return record


def summarize(records: list[dict[str, Any]], settings: LoopSettings) -> dict[str, Any]:
    """Per candidate and estimator over seeds: mean and max |relative error|, seeds within 10 %, seeds whose
    realised value lies inside the 95 % interval; with several candidates, the tuning outcome per seed."""
    out: dict[str, Any] = {}
    for key in records[0]["candidates"]:
        per: dict[str, Any] = {}
        for name in records[0]["candidates"][key]["estimators"]:
            rows = [r["candidates"][key]["estimators"][name] for r in records]
            errors = np.array([row["relative_error"] for row in rows])
            per[name] = {
                "mean_abs_relative_error": float(np.mean(np.abs(errors))),
                "max_abs_relative_error": float(np.max(np.abs(errors))),
                "mean_relative_error": float(np.mean(errors)),
                "within_10pct": int(np.sum(np.abs(errors) <= 0.10)),
                "inside_ci": int(sum(row["inside"] for row in rows)), "seeds": len(rows),
                "mean_ci_width_relative": float(np.mean([
                    (row["ci"][1] - row["ci"][0]) / r["candidates"][key]["realised"]
                    for row, r in zip(rows, records, strict=True)])),
            }
        out[key] = {"estimators": per, "mean_realised": float(np.mean([r["candidates"][key]["realised"]
                                                                        for r in records]))}
    result: dict[str, Any] = {"candidates": out}
    if len(settings.candidate_click_weights) > 1:
        result["tuning"] = tuning(records, settings)
    head = out[f"{settings.candidate_click_weights[0]:g}"]["estimators"][settings.estimator]
    goal = head["within_10pct"] >= 0.9 * head["seeds"] and head["inside_ci"] >= 0.9 * head["seeds"]  # 18 of 20
    result["headline"] = {"estimator": settings.estimator, **head, "goal_met": goal}
    return result


def tuning(records: list[dict[str, Any]], settings: LoopSettings) -> dict[str, Any]:
    """Per seed: the click weight with the best off-policy estimate (from that seed's exploration log) and the one
    with the best realised value (the simulator's truth), and the realised value of each."""
    per_seed = []
    for r in records:
        cands = r["candidates"]
        by_ope = max(cands, key=lambda c: cands[c]["estimators"][settings.estimator]["estimate"])
        by_truth = max(cands, key=lambda c: cands[c]["realised"])
        per_seed.append({"seed": r["seed"], "ope_choice": float(by_ope), "truth_choice": float(by_truth),
                         "ope_choice_realised": cands[by_ope]["realised"],
                         "truth_choice_realised": cands[by_truth]["realised"],
                         "current_realised_on_policy": r["current_on_policy"]})
    gap = [s["truth_choice_realised"] - s["ope_choice_realised"] for s in per_seed]
    best = [s["truth_choice_realised"] for s in per_seed]
    return {"per_seed": per_seed, "same_choice": int(sum(s["ope_choice"] == s["truth_choice"] for s in per_seed)),
            "mean_regret": float(np.mean(gap)), "mean_relative_regret": float(np.mean(np.array(gap) / np.array(best))),
            "seeds": len(per_seed)}


def run_loop(world: LoopWorld, settings: LoopSettings, log: Log | None = None) -> dict[str, Any]:
    """Every seed of the loop, then the summary; JSON-ready."""
    say = log or (lambda _msg: None)
    seeds = range(settings.first_seed, settings.first_seed + settings.seeds)
    records = [one_seed(world, settings, seed, say) for seed in track(seeds, "closed loop (seeds)", len(seeds))]
    return {"settings": asdict(settings), "seeds": records, "summary": summarize(records, settings)}
