"""Train every stage of a pipeline in order, evaluate it offline (per source, funnel, final slate), and
assemble the manifest of its artifact."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import open_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts, held_out_label
from rankstack.experiments.ltr_training import LambdaRankFit, fit_lambdarank_stage, fit_neural_stage
from rankstack.experiments.offline import evaluate_model
from rankstack.experiments.policy_features import fit_policy_features
from rankstack.experiments.ranker_training import MultiTaskFit, evaluate_multitask, fit_multitask
from rankstack.pipeline.components import build_source
from rankstack.pipeline.config import LambdaRankStage, MultiTaskRankerStage, NeuralRankStage, PipelineConfig
from rankstack.pipeline.multitask_stage import MultiTaskStage
from rankstack.pipeline.parts import PipelineParts
from rankstack.pipeline.pipeline import Pipeline
from rankstack.pipeline.stages import retrieve
from rankstack.provenance import code_version, machine_info
from rankstack.ranking.lambdarank import LambdaRankRanker
from rankstack.ranking.neural_ranker import NeuralRanker
from rankstack.ranking.ranker import StoredRanker
from rankstack.ranking.sequential import SequentialRanker
from rankstack.reranking.catalog import ItemCatalog
from rankstack.retrieval.funnel import candidate_recall, funnel_recall
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource

Log = Callable[[str], None]
SourceFit = Callable[[str, Mapping[str, Any], Dataset], CandidateSource]  # (name, settings, data) → fitted source


@dataclass
class TrainResult:
    """The trained pipeline, its held-out data and the manifest (config, data, code, machine, metrics)."""

    pipeline: Pipeline
    fit_data: Dataset
    held_out: Dataset
    manifest: dict[str, Any]


def new_version(name: str, when: datetime) -> str:
    """``<name>-YYYYmmdd-HHMMSS-<4 hex>``: sortable by time, unique across machines."""
    return f"{name}-{when:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def fit_source(name: str, settings: Mapping[str, Any], data: Dataset) -> CandidateSource:
    """Source ``name`` with ``settings`` fitted on ``data`` in this process (the default :data:`SourceFit`)."""
    return build_source(name, settings).fit(data)


def fit_stages(config: PipelineConfig, fit_data: Dataset, log: Log, lambdarank_fit: LambdaRankFit | None = None,
               *, source_fit: SourceFit = fit_source, multitask_fit: MultiTaskFit | None = None) -> PipelineParts:
    """Fit the sources, the ranker and the popularity fallback, in order (``lambdarank_fit``: where the LambdaRank
    ranker's trees are trained, e.g. on Ray Train; default here; ``source_fit`` and ``multitask_fit``: where the
    pipeline's sources, a sequential ranker's model and the multi-task ranker's network are, e.g. DDP on Ray Train).

    A sequential ranker trains on the same interactions as the sources; the multi-task ranker on the logged
    impressions joined with the scores of sources fitted on the impressions before its window; the LambdaRank
    and neural rankers on later windows of the fit data (``rankstack.experiments.ltr_training``), which also fits
    the sources configured ``fit: once`` (in this process) and adds them to the pipeline's sources.
    """
    sources: dict[str, CandidateSource] = {}
    for stage in config.sources:
        if stage.fit != "per_window":
            log(f"source {stage.name}: fitted once with the ranker's windows (below)")
            continue
        t0 = time.perf_counter()
        sources[stage.name] = source_fit(stage.name, stage.settings, fit_data)
        log(f"source {stage.name}: fitted in {time.perf_counter() - t0:.1f} s{sources[stage.name].fit_note()}")
    ranker: StoredRanker | None = None
    if isinstance(config.ranker, MultiTaskRankerStage):
        ranker = fit_multitask(config.ranker, config.sources, fit_data, log, multitask_fit)
    elif isinstance(config.ranker, LambdaRankStage):
        ranker = fit_lambdarank_stage(config, fit_data, sources, log, lambdarank_fit)
    elif isinstance(config.ranker, NeuralRankStage):
        ranker = fit_neural_stage(config, fit_data, sources, log)
    elif config.ranker is not None:
        if config.ranker.source in sources and not config.ranker.settings:
            model = sources[config.ranker.source]
        else:
            t0 = time.perf_counter()
            model = source_fit(config.ranker.source, config.ranker.settings, fit_data)
            log(f"ranker {config.ranker.source}: fitted in {time.perf_counter() - t0:.1f} s{model.fit_note()}")
        ranker = SequentialRanker(model)
    sources = {stage.name: sources[stage.name] for stage in config.sources}  # config order, once-fitted included
    popular = sources.get("popular")
    fallback = popular if isinstance(popular, MostPopular) else MostPopular().fit(fit_data)
    catalog = ItemCatalog.from_dataset(fit_data) if fit_data.item_features is not None else None
    policy = None
    if config.exploration.learning is not None:
        t0 = time.perf_counter()
        policy = fit_policy_features(config.exploration.learning, fit_data,
                                     representation_source(config, sources, ranker))
        log(f"exploration {config.exploration.policy}: policy features fitted in {time.perf_counter() - t0:.1f} s")
    return PipelineParts(config=config, sources=sources, fallback=fallback, user_map=fit_data.user_map,
                         item_map=fit_data.item_map, histories=fit_data.sequences(), ranker=ranker, catalog=catalog,
                         policy=policy)


def representation_source(config: PipelineConfig, sources: Mapping[str, CandidateSource],
                          ranker: StoredRanker | None) -> CandidateSource | None:
    """The fitted source ``exploration.learning.representation`` names: one of the pipeline's sources, else the
    sequential ranker's model; None for ``svd``."""
    learning = config.exploration.learning
    if learning is None or learning.representation == "svd":
        return None
    if learning.representation in sources:
        return sources[learning.representation]
    if isinstance(ranker, SequentialRanker) and ranker.source.name == learning.representation:
        return ranker.source
    raise ValueError(f"exploration.learning.representation: {learning.representation!r} was not fitted")


def training_summaries(parts: PipelineParts) -> dict[str, Any]:
    """How each stage's training went: ``{"sources": {name: summary}, "ranker": summary}`` (JSON-ready)."""
    sources = {n: s.fit_summary() for n, s in parts.sources.items()}
    ranker = parts.ranker.source if isinstance(parts.ranker, SequentialRanker) else getattr(parts.ranker, "ranker",
                                                                                           None)
    summary = getattr(ranker, "fit_summary_", None) if ranker is not None else None
    return {"sources": {n: s.to_json() for n, s in sources.items() if s is not None},
            "ranker": None if summary is None else summary.to_json()}


def budget_stops(parts: PipelineParts) -> dict[str, Any]:
    """The stages whose training a wall-clock budget ended early: ``{"sources": {name: stop}, "ranker": stop}``."""
    ranker = parts.ranker.source if isinstance(parts.ranker, SequentialRanker) else None
    return {"sources": {n: s.budget_stop_.to_json() for n, s in parts.sources.items() if s.budget_stop_},
            "ranker": None if ranker is None or ranker.budget_stop_ is None else ranker.budget_stop_.to_json()}


def evaluate_stages(pipeline: Pipeline, fit_data: Dataset, held_out: Dataset, log: Log) -> dict[str, Any]:
    """Full-ranking metrics of each source and of the final slate; candidate recall per source and merged."""
    cfg = pipeline.config
    evaluator = Evaluator.from_datasets(fit_data, held_out, ks=cfg.evaluation.ks)
    per_source = {name: evaluate_model(src, fit_data, held_out, cfg.evaluation.ks, evaluator=evaluator)
                  for name, src in pipeline.parts.sources.items()}
    funnel = funnel_recall(pipeline.parts.sources, held_out, cfg.evaluation.funnel_ks,
                           weights={s.name: s.weight for s in cfg.sources})
    log("funnel (candidate recall):\n" + funnel.table())
    final = evaluate_model(pipeline, fit_data, held_out, cfg.evaluation.ks, progress=True)
    stages = {f"retrieval (merged, {cfg.merge.k} candidates)": merged_recall(pipeline, held_out),
              **{f"final slate @{k}": final[f"recall@{k}"] for k in cfg.evaluation.ks}}
    log("recall kept by each stage: " + ", ".join(f"{name} {value:.4f}" for name, value in stages.items()))
    return {"sources": per_source, "pipeline": final, "funnel": {**funnel.to_json(), "stages": stages}}


def merged_recall(pipeline: Pipeline, held_out: Dataset, batch_size: int = 256) -> float:
    """Mean share of each held-out user's items inside the pipeline's own merged candidates (its quotas, k)."""
    truth = held_out.interaction_matrix()
    users = np.flatnonzero(np.diff(truth.indptr) > 0).astype(np.int64)
    total = 0.0
    for start in range(0, len(users), batch_size):
        batch = users[start: start + batch_size]
        table, _ = retrieve(pipeline.parts.sources, pipeline.config, batch)
        total += float(np.nansum(candidate_recall(table.item_ids, truth[batch])))
    return total / max(len(users), 1)


def train_pipeline(config: PipelineConfig, *, data_dir: Path | None = None, log: Log | None = None,
                   lambdarank_fit: LambdaRankFit | None = None, source_fit: SourceFit = fit_source,
                   multitask_fit: MultiTaskFit | None = None) -> TrainResult:
    """Load and split the data, fit every stage, evaluate; the artifact is written by ``save_artifact``
    (``lambdarank_fit``, ``source_fit``, ``multitask_fit``: see :func:`fit_stages`)."""
    say = log or (lambda _msg: None)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    loaded = open_dataset(config.data.name, data_dir, config.data.read_options())
    data = loaded.dataset
    choice = standard_split(config.data.name, data, loaded.info, requested=config.data.split)
    kind = choice.kind
    split = make_split(data, kind)
    fit_data, held_out = fit_and_eval_parts(split, config.data.eval_on)
    for note in loaded.info.notes if loaded.info is not None else []:
        say(f"note: {note}")
    say(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {len(data):,} events; split {kind} "
        f"({choice.reason}), evaluated on {config.data.eval_on}: {len(held_out):,} events "
        f"({held_out_label(split, config.data.eval_on)})")
    t1 = time.perf_counter()
    parts = fit_stages(config, fit_data, say, lambdarank_fit, source_fit=source_fit, multitask_fit=multitask_fit)
    version = new_version(config.name, started)
    t2 = time.perf_counter()
    pipeline = Pipeline(parts)
    metrics = evaluate_stages(pipeline, fit_data, held_out, say)
    if isinstance(parts.ranker, MultiTaskStage):
        metrics["ranker"] = evaluate_multitask(parts.ranker, data, held_out, parts.sources)
        say("ranker on held-out impressions: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["ranker"].items()
                                                          if k.startswith(("auc", "ece"))))
    if isinstance(parts.ranker, LambdaRankRanker | NeuralRanker):
        metrics["ranker"] = parts.ranker.report
    t3 = time.perf_counter()
    parts.manifest = {
        "version": version, "name": config.name, "created_at": started.isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "data": {"name": data.name, "checksum": data.checksum(), "fit_checksum": fit_data.checksum(),
                 "split": kind, "split_reason": choice.reason, "eval_on": config.data.eval_on,
                 "users": data.n_users, "items": data.n_items,
                 "events": len(data), "split_sizes": split.summary(),
                 **({"read": loaded.info.to_json()} if loaded.info is not None else {})},
        "stages": config.stage_names(), "metrics": metrics, "budget_stops": budget_stops(parts),
        "training": training_summaries(parts),
        "timings": {"load_split_s": round(t1 - t0, 3), "fit_s": round(t2 - t1, 3), "evaluate_s": round(t3 - t2, 3)},
        "code_version": code_version(), "machine": machine_info(),
    }
    pipeline.version = version
    return TrainResult(pipeline, fit_data, held_out, parts.manifest)
