"""The evaluate command's run: train one candidate source on a dataset's standard split, evaluate it with full ranking
and write ``runs/<id>/result.json``; and the fit / held-out parts of a split that every experiment uses."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.splits import Split, make_split, random_split
from rankstack.evaluation.evaluator import Scorer
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.experiments.offline import evaluate_model
from rankstack.io import write_text_atomic
from rankstack.pipeline.components import build_source
from rankstack.provenance import code_version, machine_info
from rankstack.retrieval.source import CandidateSource

EvalOn = Literal["validation", "test"]
VALIDATION_CARVE_RATIO = 0.1


def fit_and_eval_parts(split: Split, eval_on: EvalOn) -> tuple[Dataset, Dataset]:
    """(fit data, held-out data): tune on validation with train only; for test, fit on train ∪ validation.

    A split without validation events (e.g. the predefined Gowalla files) gets one carved from train:
    a seeded per-user random 10% of the training events, so tuning never touches the test files.
    """
    if eval_on == "validation":
        if len(split.validation) == 0:
            carved = random_split(split.train, test_ratio=VALIDATION_CARVE_RATIO, seed=0)
            return carved.train, carved.test
        return split.train, split.validation
    fit = split.train
    if len(split.validation):
        fit = split.train.with_events(pl.concat([split.train.events, split.validation.events]))
    return fit, split.test


def held_out_label(split: Split, eval_on: EvalOn) -> str:
    """What :func:`fit_and_eval_parts` scores, in words (the carved validation slice is not in the split's sizes)."""
    if eval_on == "test":
        return "the test split"
    if len(split.validation) == 0:
        return f"{VALIDATION_CARVE_RATIO:.0%} of train per user, held out from fitting"
    return "the validation split"


def dataset_entry(dataset: Dataset, split_kind: str, split: Split, held_out: Dataset, eval_on: EvalOn
                  ) -> dict[str, Any]:
    """A run record's ``dataset`` entry: sizes, checksum, the split and what was held out and scored."""
    return {
        "name": dataset.name,
        "checksum": dataset.checksum(),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "events": len(dataset),
        "split": split_kind,
        "split_sizes": split.summary(),
        "evaluated_on": eval_on,
        "held_out": {"events": len(held_out), "users": held_out.events.get_column("user_id").n_unique(),
                     "what": held_out_label(split, eval_on)},
    }


class Evaluation(Protocol):
    """How a fitted model's full-ranking metrics are computed, when not in this process (e.g. sharded across Ray
    workers: ``rankstack.distributed.evaluation.ShardedEvaluation``); the metrics must equal the local ones."""

    def __call__(self, model: Scorer, train: Dataset, held_out: Dataset, ks: Sequence[int], *,
                 device: str | None = None, progress: bool = False) -> dict[str, float]:
        """Metrics of ``model`` on ``held_out``, ``train`` items excluded."""
        ...

    def describe(self) -> dict[str, Any]:
        """Where it ran, for the run record's ``execution``."""
        ...


LOCAL_EXECUTION = {"backend": "local", "workers": 1, "address": None}


def evaluate_source(
    model: CandidateSource, fit_data: Dataset, held_out: Dataset, ks: Sequence[int], *, device: str | None = None,
    evaluation: Evaluation | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Fit ``model`` and evaluate it (here, or by ``evaluation``); returns (metrics, timings in seconds)."""
    t0 = time.perf_counter()
    model.fit(fit_data)
    t1 = time.perf_counter()
    if evaluation is None:
        metrics = evaluate_model(model, fit_data, held_out, ks, device=device, progress=True)
    else:
        metrics = evaluation(model, fit_data, held_out, ks, device=device, progress=True)
    t2 = time.perf_counter()
    return metrics, {"fit_s": round(t1 - t0, 3), "evaluate_s": round(t2 - t1, 3)}


def run_experiment(
    dataset: Dataset,
    split_kind: str,
    model_name: str,
    params: Mapping[str, Any] | None = None,
    *,
    ks: Sequence[int] = (10, 20),
    eval_on: EvalOn = "test",
    device: str | None = None,
    load_s: float = 0.0,
    about_data: Mapping[str, Any] | None = None,
    evaluation: Evaluation | None = None,
) -> dict[str, Any]:
    """Split, fit, evaluate; return the run record (config, data checksum, code version, machine, timings);
    ``about_data`` joins the record's ``dataset`` entry (why this split, how the file was read); ``evaluation``
    computes the metrics elsewhere (Ray workers), the record's ``execution`` says where."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    model = build_source(model_name, params)
    split = make_split(dataset, split_kind)
    fit_data, held_out = fit_and_eval_parts(split, eval_on)
    split_s = time.perf_counter() - t0
    metrics, timings = evaluate_source(model, fit_data, held_out, ks, device=device, evaluation=evaluation)
    summary = model.fit_summary()  # None only for a source that neither trains in epochs nor says it does not
    run_id = f"{started:%Y%m%d-%H%M%S}-{dataset.name}-{model_name}-{secrets.token_hex(2)}"
    return {
        "run_id": run_id,
        "created_at": started.isoformat(timespec="seconds"),
        "dataset": {**dataset_entry(dataset, split_kind, split, held_out, eval_on), **(about_data or {})},
        "split": split_kind,  # also at the top, beside the training headline: what a reader checks first
        "model": {"name": model_name, "config": model.config.model_dump(mode="json"),
                  "budget_stop": None if model.budget_stop_ is None else model.budget_stop_.to_json()},
        **(summary.headline() if summary else dict.fromkeys(("epochs_run", "best_epoch", "stopped_by"))),
        "training": summary.to_json() if summary else None,
        "ks": list(ks),
        "metrics": metrics,
        "execution": LOCAL_EXECUTION if evaluation is None else evaluation.describe(),
        "timings": {"load_s": round(load_s, 3), "split_s": round(split_s, 3), **timings,
                    "total_s": round(load_s + time.perf_counter() - t0, 3)},
        "machine": machine_info(),
        "code_version": code_version(),
    }


def save_run(record: Mapping[str, Any], runs_dir: Path) -> Path:
    """Write ``runs/<run_id>/result.json`` atomically and return its path."""
    path = runs_dir / str(record["run_id"]) / "result.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    return path


def save_run_report(record: Mapping[str, Any], path: Path) -> Path:
    """Write the run's self-contained HTML report (metrics, chart, training: epochs, best epoch, stop reason,
    validation curve) to ``path``."""
    from rankstack.evaluation.report import write_report  # matplotlib: only when a report is written

    model, data = record["model"]["name"], record["dataset"]
    metrics = {k: float(v) for k, v in record["metrics"].items() if isinstance(v, int | float)}
    summary = FitSummary.from_json(record.get("training"))
    machine = record.get("machine", {})
    return write_report(
        path, title=f"rankstack evaluate — {model} on {data['name']}", results={model: metrics},
        metrics=list(metrics),
        meta={"dataset": f"{data['name']} ({data['users']} users, {data['items']} items, {data['events']} events)",
              "protocol": f"split {data['split']}, evaluated on {data['evaluated_on']}",
              "run": str(record["run_id"]),
              "machine": f"{machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores)",
              "fit wall time": f"{record['timings']['fit_s']:.1f} s"},
        training=None if summary is None else {model: summary})
