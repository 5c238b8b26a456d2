"""``rankstack tune``: the search of a space file on Ray Tune, the chosen setting, and its one test run.

Every trial fits on the train split and is scored on the validation split (a split without validation events gets
a seeded 10% of each user's train events, as ``evaluate --eval-on validation`` does); a model trained in epochs
reports each validated epoch's score, and ASHA stops trials that fall behind at its rungs. The setting with the best
validation metric is then fitted on train ∪ validation and scored on test — the only time the test split is used.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from rankstack.data.dataset import Dataset
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.tuning import TuneSpec, chosen_pipeline, run_trial
from rankstack.io import write_text_atomic

EPOCH_SCORE = "epoch_score"  # what ASHA compares: each validated epoch's score, then the trial's validation metric


def search_space(spec: TuneSpec) -> dict[str, Any]:
    """The space file's entries as Ray Tune distributions (``randint`` includes its high end)."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, entry in spec.space.items():
        kind, value = next(iter(entry.items()))
        if kind == "uniform":
            out[key] = tune.uniform(value[0], value[1])
        elif kind == "loguniform":
            out[key] = tune.loguniform(value[0], value[1])
        elif kind == "randint":
            out[key] = tune.randint(int(value[0]), int(value[1]) + 1)
        elif kind == "choice":
            out[key] = tune.choice(value)
        else:
            out[key] = tune.grid_search(value)
    return out


def _trial(config: dict[str, Any], spec: TuneSpec, fit: Dataset, held: Dataset) -> None:
    """One Ray Tune trial: report every validated epoch, then the validation metrics."""
    from ray import tune

    def on_epoch(epoch: int, score: float, metric: str | None) -> None:
        tune.report({EPOCH_SCORE: score, "epoch": epoch, "final": False})

    metrics = run_trial(spec.model, {**spec.settings, **config}, fit, held, spec.ks, on_epoch)
    tune.report({EPOCH_SCORE: metrics[spec.metric], "final": True,
                 **{f"validation/{k}": v for k, v in metrics.items()}})


def tune_on_ray(spec: TuneSpec, data: Dataset, split_kind: str, backend: Backend, out: Path, *,
                split_requested: str | None = None) -> dict[str, Any]:
    """Run the search, write ``out/trials.csv``, ``out/chosen.yaml`` (a pipeline for ``rankstack train``) and
    ``out/result.json`` (every trial, the chosen setting, its validation and test metrics); return the result."""
    from rankstack.data.splits import make_split
    from rankstack.experiments.evaluate_run import evaluate_source
    from rankstack.pipeline.components import build_source

    started = time.perf_counter()
    split = make_split(data, split_kind)
    fit, held = fit_and_eval_parts(split, "validation")
    with ray_session(backend) as ray:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.basic_variant import BasicVariantGenerator

        workers = worker_count(ray, backend)
        scheduler = None if spec.asha is None else ASHAScheduler(
            time_attr="training_iteration", max_t=spec.asha.max_t, grace_period=spec.asha.grace_period,
            reduction_factor=spec.asha.reduction_factor)
        storage = (out / "ray").resolve()
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, spec=spec, fit=fit, held=held), {"cpu": 1}),
            param_space=search_space(spec),
            tune_config=tune.TuneConfig(metric=EPOCH_SCORE, mode="max", num_samples=spec.samples, scheduler=scheduler,
                                        max_concurrent_trials=workers,
                                        search_alg=BasicVariantGenerator(random_state=spec.seed)),
            run_config=tune.RunConfig(storage_path=str(storage), name="search", verbose=0),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Ray Tune's tables: stdout stays the command's own
            grid = tuner.fit()
    trials: list[dict[str, Any]] = []
    key = f"validation/{spec.metric}"
    for i in range(len(grid)):
        done_trial = grid[i]
        row = done_trial.metrics or {}
        finished = bool(row.get("final"))
        trials.append({"config": dict(done_trial.config or {}), "finished": finished,
                       "stopped_early": not finished and done_trial.error is None,
                       "error": None if done_trial.error is None else str(done_trial.error).splitlines()[0],
                       "reports": int(row.get("training_iteration", 0)),
                       "validation": {k.removeprefix("validation/"): v for k, v in row.items()
                                      if k.startswith("validation/")}})
    done = [t for t in trials if t["finished"]]
    if not done:
        raise RuntimeError(f"no trial finished: {[t['error'] for t in trials]}")
    best = max(done, key=lambda t: t["validation"][spec.metric])
    chosen = dict(best["config"])
    fit_t, test_t = fit_and_eval_parts(split, "test")  # the test split, once, for the chosen setting
    test_metrics, test_timings = evaluate_source(build_source(spec.model, {**spec.settings, **chosen}), fit_t, test_t,
                                                 spec.ks)
    out.mkdir(parents=True, exist_ok=True)
    table = pl.DataFrame([{**{f"config/{k}": v for k, v in t["config"].items()}, "finished": t["finished"],
                           "stopped_early": t["stopped_early"], "reports": t["reports"],
                           key: t["validation"].get(spec.metric)} for t in trials])
    table.sort(key, descending=True, nulls_last=True).write_csv(out / "trials.csv")
    pipeline = chosen_pipeline(spec, chosen, split_requested)
    write_text_atomic(out / "chosen.yaml", yaml.safe_dump(pipeline, sort_keys=False))
    result = {"dataset": data.name, "model": spec.model, "metric": spec.metric, "split": split_kind,
              "chosen": chosen, "validation": best["validation"], "test": test_metrics, "test_timings": test_timings,
              "trials": trials, "workers": workers, "asha": None if spec.asha is None else spec.asha.model_dump(),
              "wall_s": round(time.perf_counter() - started, 2), "chosen_pipeline": str(out / "chosen.yaml")}
    write_text_atomic(out / "result.json", json.dumps(result, indent=2, default=str) + "\n")
    return result
