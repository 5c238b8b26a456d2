"""EASE's λ path as an experiment: fit on the training part along several λ (one Gram matrix), evaluate each on
the validation part and name the best, so λ is chosen without ever seeing the test split."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rankstack.data.dataset import Dataset
from rankstack.data.splits import make_split
from rankstack.errors import ConfigError
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import dataset_entry, fit_and_eval_parts
from rankstack.provenance import code_version, machine_info
from rankstack.retrieval.ease import EASE, EASEConfig, PathMethod


def parse_l2_grid(value: object) -> list[float] | None:
    """The λ values of an ``l2`` setting that lists several (``100,200,500`` or ``[100, 200]``); None for one."""
    if isinstance(value, str) and "," in value:
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return None
    try:
        l2s = [float(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"l2: expected numbers > 0 separated by commas, got {value!r}") from None
    if not l2s or any(not v > 0 for v in l2s):
        raise ConfigError(f"l2: every λ must be > 0, got {value!r}")
    repeated = sorted({v for v in l2s if l2s.count(v) > 1})
    if repeated:
        raise ConfigError(f"l2: λ={repeated[0]:g} is listed twice in {value!r}")
    return l2s


def selection_metric(ks: Sequence[int]) -> str:
    """The metric λ is chosen by: ndcg at the largest cut-off."""
    return f"ndcg@{max(ks)}"


def run_lambda_path(
    dataset: Dataset,
    split_kind: str,
    params: Mapping[str, Any],
    l2s: Sequence[float],
    *,
    ks: Sequence[int] = (10, 20),
    device: str | None = None,
    method: PathMethod = "cholesky",
    load_s: float = 0.0,
    about_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit EASE along ``l2s`` on the split's training part, evaluate each λ on validation; return the run record
    with every λ's metrics, the best λ (highest :func:`selection_metric`; ties: the first listed) and its metrics.
    ``about_data`` joins the record's ``dataset`` entry, as in ``run_experiment``."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    model = EASE(EASEConfig.model_validate({**params, "l2": l2s[0]}))
    split = make_split(dataset, split_kind)
    fit_data, held_out = fit_and_eval_parts(split, "validation")
    evaluator = Evaluator.from_datasets(fit_data, held_out, ks=ks, device=device, progress=True)
    split_s = time.perf_counter() - t0
    select = selection_metric(ks)
    path: list[dict[str, Any]] = []
    steps = iter(model.fit_path(fit_data, l2s, method=method))
    while True:
        t1 = time.perf_counter()
        fitted = next(steps, None)
        if fitted is None:
            break
        t2 = time.perf_counter()
        metrics = evaluator.evaluate(fitted)
        path.append({"l2": fitted.config.l2, "metrics": metrics, "fit_s": round(t2 - t1, 3),
                     "evaluate_s": round(time.perf_counter() - t2, 3)})
    best = max(path, key=lambda step: step["metrics"][select])  # max keeps the first of equal values
    config = model.config.model_copy(update={"l2": best["l2"]})
    return {
        "run_id": f"{started:%Y%m%d-%H%M%S}-{dataset.name}-ease-l2path-{secrets.token_hex(2)}",
        "created_at": started.isoformat(timespec="seconds"),
        "dataset": {**dataset_entry(dataset, split_kind, split, held_out, "validation"), **(about_data or {})},
        "model": {"name": "ease", "config": config.model_dump(mode="json")},
        "ks": list(ks),
        "lambda_path": path,
        "best": {"l2": best["l2"], "selected_by": select, "value": best["metrics"][select], "method": method},
        "metrics": best["metrics"],
        "timings": {"load_s": round(load_s, 3), "split_s": round(split_s, 3),
                    "fit_s": round(sum(s["fit_s"] for s in path), 3),
                    "evaluate_s": round(sum(s["evaluate_s"] for s in path), 3),
                    "total_s": round(load_s + time.perf_counter() - t0, 3)},
        "machine": machine_info(),
        "code_version": code_version(),
    }
