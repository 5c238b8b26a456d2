"""Train and evaluate the multi-task ranker on a logged dataset: temporal split, calibrated per-objective metrics,
the oracle ceiling when true probabilities are known, and simulator-judged slates when the world is known.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.evaluation.classification import expected_calibration_error, log_loss, roc_auc
from rankstack.provenance import code_version, machine_info
from rankstack.ranking.impressions import ImpressionSplit, impression_table, temporal_impression_split
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.slates import CandidateSets, candidate_sets, slate_metrics
from rankstack.value.objective import ValueObjective

HEADLINE = ("auc_click", "auc_conversion", "oracle_auc_click", "oracle_auc_conversion", "ece_click", "ece_conversion")
ORACLE_COLUMNS = {"click": "p_click", "conversion": "p_conversion"}


class ExperimentConfig(BaseModel):
    """Split and slate settings of the experiment; every other ``--set`` key configures the model."""

    model_config = ConfigDict(extra="forbid")

    validation_start: float = Field(default=0.7, gt=0.0, lt=1.0)
    test_start: float = Field(default=0.85, gt=0.0, lt=1.0)
    slate_requests: int = Field(default=5_000, ge=0, description="test requests re-ranked and judged by the simulator")
    n_candidates: int = Field(default=50, ge=1)
    slate_size: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.validation_start >= self.test_start:
            raise ValueError("validation_start must come before test_start")
        return self


def experiment_configs(params: Mapping[str, Any], table: pl.DataFrame) -> tuple[ExperimentConfig, MultiTaskConfig]:
    """Split ``params`` into experiment and model configs; objectives default to what the labels support."""
    exp_keys = set(ExperimentConfig.model_fields)
    exp = {k: v for k, v in params.items() if k in exp_keys}
    model = {k: v for k, v in params.items() if k not in exp_keys}
    if "objectives" not in model:
        objectives = ["click"]
        if table.get_column("conversion").sum() > 0:
            objectives.append("conversion")
            if model.get("revenue_mode") == "regression" or model.get("payout_column", "payout") in table.columns:
                objectives.append("revenue")
        model["objectives"] = objectives
    try:
        return ExperimentConfig.model_validate(exp), MultiTaskConfig.model_validate(model)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<config>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings for model 'multitask': {problems}") from None


def _parts(split: ImpressionSplit, eval_on: Literal["validation", "test"]
           ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(train, calibration, evaluation): for validation, the validation window is cut in two halves by time."""
    if eval_on == "test":
        return split.train, split.validation, split.test
    times = split.validation.get_column("timestamp")
    middle = times.sort()[len(times) // 2]
    ts = pl.col("timestamp")
    return split.train, split.validation.filter(ts < middle), split.validation.filter(ts >= middle)


def classification_metrics(ranker: MultiTaskRanker, table: pl.DataFrame,
                           truth: pl.DataFrame | None = None) -> dict[str, float]:
    """AUC (raw scores), log-loss and ECE (calibrated and raw) per head, and the oracle's when ``truth`` is given."""
    cal = ranker.predict(table)
    raw = ranker.predict(table, calibrated=False)
    metrics: dict[str, float] = {}
    oracle = None
    if truth is not None:
        oracle = table.select("request_id", "position").join(truth, on=["request_id", "position"], how="left")
    for head in ("click", "conversion"):
        if head not in raw:
            continue
        y = table.get_column(head).to_numpy().astype(np.float64)
        if y.min() == y.max():
            continue
        metrics[f"auc_{head}"] = roc_auc(y, raw[head])
        metrics[f"log_loss_{head}"] = log_loss(y, cal[head])
        metrics[f"ece_{head}"] = expected_calibration_error(y, cal[head])
        metrics[f"log_loss_{head}_raw"] = log_loss(y, raw[head])
        metrics[f"ece_{head}_raw"] = expected_calibration_error(y, raw[head])
        metrics[f"base_rate_{head}"] = float(y.mean())
        if oracle is not None and ORACLE_COLUMNS[head] in oracle.columns:
            p = oracle.get_column(ORACLE_COLUMNS[head]).to_numpy()
            if not np.isnan(p).any():
                metrics[f"oracle_auc_{head}"] = roc_auc(y, p)
                metrics[f"oracle_log_loss_{head}"] = log_loss(y, p)
                metrics[f"oracle_ece_{head}"] = expected_calibration_error(y, p)
    clicked = table.get_column("click").to_numpy() > 0
    if "cvr" in raw and clicked.any():
        y = table.get_column("conversion").to_numpy()[clicked].astype(np.float64)
        if 0 < y.sum() < y.size:
            metrics["auc_cvr_given_click"] = roc_auc(y, raw["cvr"][clicked])
    return metrics


@dataclass(frozen=True)
class JudgedCandidates:
    """Candidate sets for sampled evaluation requests, the ranker's calibrated slot-0 predictions of them (flat,
    request-major) and the true expected revenue of each candidate in slot 0 ([n, c])."""

    candidates: CandidateSets
    predictions: dict[str, np.ndarray]
    true_revenue: np.ndarray


def judge_candidates(ranker: MultiTaskRanker, sim: MarketplaceSimulator, dataset: Dataset,
                     impressions: pl.DataFrame, evaluation: pl.DataFrame, cfg: ExperimentConfig) -> JudgedCandidates:
    """Draw candidates for up to ``cfg.slate_requests`` evaluation requests and score them with ``ranker``."""
    requests = evaluation.group_by("request_id", maintain_order=True).first()
    if requests.height > cfg.slate_requests:
        requests = requests.sample(cfg.slate_requests, seed=0).sort("timestamp")
    cands = candidate_sets(sim, dataset, impressions, requests, n_candidates=min(cfg.n_candidates, dataset.n_items))
    world = sim.world
    first = np.zeros_like(cands.items)
    true_click = world.click_probability(cands.requests, cands.items, first, cands.exposures)
    true_revenue = true_click * world.conversion_probability(cands.requests, cands.items) * \
        world.item_payout[cands.items]
    return JudgedCandidates(cands, ranker.score(cands.table), true_revenue)


def ranking_value_metrics(sim: MarketplaceSimulator, judged: JudgedCandidates, k: int,
                          objective: ValueObjective | None = None) -> dict[str, float]:
    """True slate metrics of rankings by the value objective, by pCTR, by true value (oracle) and at random."""
    cands, pred = judged.candidates, judged.predictions
    rankings = {
        "random": np.random.default_rng(0).random(cands.items.shape),
        "click_ranked": cands.matrix(pred["click"]),
        "oracle_value_ranked": judged.true_revenue,
    }
    if "revenue" in pred:
        rankings["value_ranked"] = cands.matrix((objective or ValueObjective()).score(pred))
    k = min(k, cands.items.shape[1])
    out: dict[str, float] = {"slate_requests": float(cands.items.shape[0]), "candidates": float(cands.items.shape[1])}
    for name, scores in rankings.items():
        for metric, value in slate_metrics(sim, cands, scores, k).items():
            out[f"{name}_{metric}"] = value
    return out


def run_multitask_experiment(
    dataset: Dataset, params: Mapping[str, Any] | None = None, *, eval_on: Literal["validation", "test"] = "test",
    truth: pl.DataFrame | None = None, simulator: MarketplaceSimulator | None = None, load_s: float = 0.0,
) -> dict[str, Any]:
    """Temporal split of the impressions, fit + calibrate, evaluate; returns the run record."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    table = impression_table(dataset)
    exp, model_cfg = experiment_configs(params or {}, table)
    split = temporal_impression_split(table, validation_start=exp.validation_start, test_start=exp.test_start)
    train, calib, held_out = _parts(split, eval_on)
    t1 = time.perf_counter()
    ranker = MultiTaskRanker(model_cfg).fit(train, calib)
    t2 = time.perf_counter()
    metrics = classification_metrics(ranker, held_out, truth)
    if simulator is not None and "click" in model_cfg.objectives and exp.slate_requests > 0:
        judged = judge_candidates(ranker, simulator, dataset, table, held_out, exp)
        metrics.update(ranking_value_metrics(simulator, judged, exp.slate_size))
    t3 = time.perf_counter()
    record: dict[str, Any] = {
        "run_id": f"{started:%Y%m%d-%H%M%S}-{dataset.name}-multitask-{secrets.token_hex(2)}",
        "created_at": started.isoformat(timespec="seconds"),
        "dataset": {
            "name": dataset.name, "checksum": dataset.checksum(), "users": dataset.n_users, "items": dataset.n_items,
            "events": len(dataset), "impressions": table.height, "split": "temporal",
            "split_sizes": {"train": train.height, "calibration": calib.height, "evaluation": held_out.height},
            "evaluated_on": eval_on, "oracle": truth is not None, "simulator": simulator is not None,
        },
        "model": {"name": "multitask", "config": model_cfg.model_dump(mode="json"),
                  "experiment": exp.model_dump(mode="json"),
                  "calibrators": {k: v.kind for k, v in ranker.calibrators_.items()},
                  "features": {"categorical": ranker.encoder_.categorical_ if ranker.encoder_ else [],
                               "numeric": ranker.encoder_.numeric_ if ranker.encoder_ else []}},
        **(ranker.fit_summary_.headline() if ranker.fit_summary_ else {}),
        "training": None if ranker.fit_summary_ is None else ranker.fit_summary_.to_json(),
        "metrics": metrics,
        "history": ranker.history_,
        "timings": {"load_s": round(load_s, 3), "prepare_s": round(t1 - t0, 3), "fit_s": round(t2 - t1, 3),
                    "evaluate_s": round(t3 - t2, 3), "total_s": round(load_s + t3 - t0, 3)},
        "machine": machine_info(),
        "code_version": code_version(),
    }
    record.update({k: metrics.get(k) for k in HEADLINE})
    return record
