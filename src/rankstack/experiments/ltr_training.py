"""Train a learned candidate ranker (``ranker.kind: lambdarank`` or ``neural``) on leakage-safe windows of the fit data.

Per user, positive events in time order (``ranker_windows``)::

    | feature window ...................... | label window (label_events) | validation window (validation_events) |

and with ``label_windows`` W > 1, W label windows of ``label_events`` each, back to back before the validation
window; label window w (w = 0 the latest) has its own feature window, every event before it::

    | feature window of w = 1 ... | label window w = 1 | label window w = 0 | validation window |

1. for each label window, sources (and the sequential scorer) fitted on its feature window retrieve each user's
   candidates; the candidates that appear in the user's label window are the positives (training rows; a user
   gives one group per label window);
2. sources fitted on the feature + label windows give the validation rows (positives: the validation window),
   on which the ranker (LightGBM, or the neural ranker) stops early;
3. the caller fits every source on the whole fit data for serving; the ranker's item statistics are recomputed
   on it too.

A source configured ``fit: once`` (one that reads histories at request time, e.g. SASRec) is instead fitted a
single time on the events before every user's first label or validation event, and each window (and serving)
points that model at its own histories (``with_histories``); ``fit: once_continued`` serves instead with that
model trained further on all the fit data (``continued``).

Features of a window's rows read only that window's fitted sources, statistics and histories, so no event of a
label (or validation) window reaches a feature of its own rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.pipeline.components import build_source
from rankstack.pipeline.config import (
    CandidateRankerStage,
    ExplorationStage,
    LambdaRankStage,
    NeuralRankStage,
    PipelineConfig,
)
from rankstack.pipeline.parts import PipelineParts
from rankstack.pipeline.pipeline import Pipeline
from rankstack.ranking.candidate_features import ItemStats, candidate_features, feature_names, request_times
from rankstack.ranking.lambdarank import LambdaRankRanker, embedding_vectors, sequential_scores
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank
from rankstack.ranking.neural_ranker import NeuralRanker
from rankstack.ranking.neural_ranker_train import fit_neural
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource

Log = Callable[[str], None]
_ROW, _RANK, _N = "_row", "_from_end", "_n"


@dataclass
class RankerWindows:
    """The fit data cut per user: ``before_labels`` (feature window: every event before the label window),
    ``labels`` (label-window events), ``before_validation`` (feature + label windows) and ``validation``;
    ``earlier`` holds the (feature window, labels) of further label windows, latest first."""

    before_labels: Dataset
    labels: pl.DataFrame
    before_validation: Dataset
    validation: pl.DataFrame
    earlier: list[tuple[Dataset, pl.DataFrame]] = field(default_factory=list)
    before_all: Dataset | None = None  # every event before each user's first held-out (label or validation) event

    @property
    def training(self) -> list[tuple[Dataset, pl.DataFrame]]:
        """Every label window's (feature window, label events), latest first."""
        return [(self.before_labels, self.labels), *self.earlier]

    @property
    def before_every_window(self) -> Dataset:
        """What a model fitted once sees: ``before_all``, else the earliest label window's feature window."""
        return self.before_all if self.before_all is not None else self.training[-1][0]


def ranker_windows(data: Dataset, label_events: int = 1, validation_events: int = 1,
                   min_history: int = 3, label_windows: int = 1, order: str = "time", seed: int = 0) -> RankerWindows:
    """Each user's last ``validation_events`` positive events → validation, the ``label_events`` before → labels
    (and ``label_windows`` - 1 more such windows further back), the rest → features; a user is in a window when
    at least ``min_history`` positives precede it. An event after a user's first event of a window (e.g. an
    impression) leaves that window's feature window.

    ``order="random"`` (for logs whose row order means nothing, e.g. item-sorted check-ins): the positives are
    ranked by a seeded shuffle per user instead of time, and a window's feature window drops only the user's
    positives of that window, of the windows after it and of the validation window.
    """
    if order not in ("time", "random"):
        raise ValueError(f"ranker windows: order must be 'time' or 'random', got {order!r}")
    ev = (data.events.with_row_index(_ROW).sort(["user_id", "timestamp", _ROW])
          .with_columns(pl.int_range(pl.len()).over("user_id").alias("_order")))
    positive = [e for e in data.schema.event_types if data.schema.weight(e) > 0]
    pos = ev.filter(pl.col("event").is_in(positive))
    if order == "random":
        keys = np.random.default_rng(seed).permutation(pos.height)
        pos = pos.with_columns(pl.Series("_key", keys)).with_columns(
            (pl.len().over("user_id") - pl.col("_key").rank("ordinal").over("user_id")).cast(pl.Int64).alias(_RANK))
    else:
        pos = pos.with_columns((pl.len().over("user_id") - pl.int_range(pl.len()).over("user_id") - 1).alias(_RANK))
    pos = pos.with_columns(pl.len().over("user_id").alias(_N))
    held = label_events + validation_events
    validation = pos.filter((pl.col(_N) >= held + min_history) & (pl.col(_RANK) < validation_events))

    def before(first: pl.DataFrame, held: list[pl.DataFrame]) -> Dataset:
        """Time: each user of ``first`` cut before its first event there; random: the ``held`` rows dropped."""
        if order == "random":
            kept = ev.join(pl.concat([h.select(_ROW) for h in held]), on=_ROW, how="anti")
        else:
            cut = first.group_by("user_id").agg(pl.col("_order").min().alias("_cut"))
            kept = ev.join(cut, on="user_id", how="left").filter(pl.col("_cut").is_null() |
                                                                 (pl.col("_order") < pl.col("_cut")))
        return data.with_events(kept.sort(_ROW).select(data.events.columns))

    cols = data.events.columns
    windows, held_out = [], [validation]
    for w in range(label_windows):
        lo, hi = validation_events + w * label_events, validation_events + (w + 1) * label_events
        labels = pos.filter((pl.col(_N) >= hi + min_history) & (pl.col(_RANK) >= lo) & (pl.col(_RANK) < hi))
        held_out.append(labels)
        windows.append((before(labels, held_out), labels.sort(_ROW).select(cols)))
    (first, labels_0), *earlier = windows
    return RankerWindows(first, labels_0, before(validation, [validation]), validation.sort(_ROW).select(cols),
                         earlier, before(pl.concat(held_out), held_out))


def _fit_sources(config: PipelineConfig, data: Dataset, log: Log, label: str,
                 once: Mapping[str, CandidateSource] | None = None) -> dict[str, CandidateSource]:
    """Every source fitted on ``data``; those fitted once (``once``) only pointed at its histories."""
    sources: dict[str, CandidateSource] = {}
    for stage in config.sources:
        if once is not None and stage.name in once:
            sources[stage.name] = rebound(once[stage.name], data)
            continue
        t0 = time.perf_counter()
        sources[stage.name] = build_source(stage.name, stage.settings).fit(data)
        log(f"ranker {label} window: source {stage.name} fitted in {time.perf_counter() - t0:.1f} s")
    return sources


def rebound(model: CandidateSource, data: Dataset) -> CandidateSource:
    """``model`` (fitted once) reading ``data``'s histories: its ``with_histories``."""
    with_histories = getattr(model, "with_histories", None)
    if with_histories is None:
        raise TypeError(f"source {model.name!r} has no with_histories, so it cannot be fitted once")
    out: CandidateSource = with_histories(data)
    return out


def fit_once_sources(config: PipelineConfig, windows: RankerWindows, log: Log) -> dict[str, CandidateSource]:
    """The sources configured ``fit: once`` (or ``once_continued``), each fitted a single time on the events before
    every user's first label or validation event (``before_all``)."""
    return {stage.name: _fit_once(stage.name, stage.settings, windows, log, f"source {stage.name}")
            for stage in config.sources if stage.fit != "per_window"}


def _fit_once(name: str, settings: Mapping[str, Any], windows: RankerWindows, log: Log,
              what: str) -> CandidateSource:
    """Source ``name`` fitted on the events before every window, logged as ``what``."""
    t0 = time.perf_counter()
    model = build_source(name, settings).fit(windows.before_every_window)
    log(f"ranker: {what} fitted once, before every window, in {time.perf_counter() - t0:.1f} s{model.fit_note()}")
    return model


def _sequential(stage: CandidateRankerStage, sources: Mapping[str, CandidateSource], data: Dataset,
                log: Log, label: str) -> CandidateSource | None:
    """The sequential scorer of the ranker's features: the fitted source when it is one without settings."""
    spec = stage.sequential
    if spec is None:
        return None
    if spec.source in sources and not spec.settings:
        return sources[spec.source]
    t0 = time.perf_counter()
    model = build_source(spec.source, spec.settings).fit(data)
    log(f"ranker {label}: sequential {spec.source} fitted in {time.perf_counter() - t0:.1f} s")
    return model


def item_stats(stage: CandidateRankerStage, data: Dataset) -> ItemStats:
    """The item statistics the features read, over ``data``."""
    return ItemStats.from_dataset(data, recent_days=stage.recent_days, neighbors=stage.cooc_neighbors,
                                  attribute=stage.attribute, transition_gap=stage.transition_gap)


def candidate_pipeline(config: PipelineConfig, sources: dict[str, CandidateSource], data: Dataset) -> Pipeline:
    """A pipeline of the fitted ``sources`` without ranker, value, re-rank or learning exploration stages: it yields
    the candidates (a learning policy's features are fitted after the ranker, so the window has none to give it)."""
    bare = config.model_copy(update={"ranker": None, "value": None, "rerank": None, "exploration": ExplorationStage()})
    popular = sources.get("popular")
    fallback = popular if isinstance(popular, MostPopular) else MostPopular().fit(data)
    return Pipeline(PipelineParts(config=bare, sources=sources, fallback=fallback, user_map=data.user_map,
                                  item_map=data.item_map, histories=data.sequences()))


@dataclass
class WindowModels:
    """What a window's rows are built from: sources, sequential scorer and statistics fitted on the events before
    the window, and the candidate pipeline over those sources."""

    sources: dict[str, CandidateSource]
    sequential: CandidateSource | None
    stats: ItemStats
    pipeline: Pipeline


def fit_window(config: PipelineConfig, stage: CandidateRankerStage, data: Dataset, log: Log, label: str,
               sequential: CandidateSource | None = None,
               once: Mapping[str, CandidateSource] | None = None) -> WindowModels:
    """Fit the sources (those fitted once, ``once``, are pointed at ``data``'s histories), the sequential scorer
    (unless one fitted once is given) and the statistics on ``data`` (every event before a window)."""
    sources = _fit_sources(config, data, log, label, once)
    seq = sequential if sequential is not None else _sequential(stage, sources, data, log, label)
    return WindowModels(sources, seq, item_stats(stage, data), candidate_pipeline(config, sources, data))


def labelled_rows(models: WindowModels, stage: CandidateRankerStage, labels: pl.DataFrame,
                  k: int) -> tuple[RankingRows, float]:
    """Grouped rows of the users of ``labels`` (the first ``stage.max_users`` of a seeded shuffle): their
    candidates and features, label 1 where the candidate is one of the user's window items; also the share of
    window items found among the candidates (candidate recall). A row's request time is the user's first event
    of the window (the moment the user came back)."""
    users = np.unique(labels.get_column("user_id").to_numpy()).astype(np.int64)
    if stage.max_users is not None and len(users) > stage.max_users:
        users = np.sort(np.random.default_rng(stage.seed).choice(users, stage.max_users, replace=False))
    wanted: dict[int, set[int]] = {}
    for u, i in labels.select("user_id", "item_id").iter_rows():
        wanted.setdefault(int(u), set()).add(int(i))
    parts, found, total = [], 0, 0
    names = list(models.sources)
    vectors = embedding_vectors(models.sources, stage.embedding)
    first = request_times(labels, len(models.stats.user_events))
    for start in range(0, len(users), 256):
        chunk = users[start: start + 256]
        batch = models.pipeline.rank_inputs(chunk, k, times=first[chunk])
        matrix, valid = candidate_features(batch, models.stats, names, last_n=stage.last_n,
                                           seq_scores=sequential_scores(models.sequential, batch),
                                           item_vectors=vectors, recency=stage.recency)
        hits = np.array([[int(i) in wanted[int(u)] for i in row] for u, row in zip(chunk, batch.item_ids,
                                                                                   strict=True)]) & valid
        found += int(hits.sum())
        total += sum(len(wanted[int(u)]) for u in chunk)
        parts.append(RankingRows(matrix, hits[valid].astype(np.float64), valid.sum(axis=1).astype(np.int64),
                                 chunk))
    return RankingRows.concat(parts), found / max(total, 1)


LambdaRankFit = Callable[..., tuple[str, dict[str, Any]]]  # fit_lambdarank's signature and result


def window_rows(config: PipelineConfig, stage: CandidateRankerStage, data: Dataset, labels: pl.DataFrame,
                log: Log, label: str, sequential: CandidateSource | None = None,
                once: Mapping[str, CandidateSource] | None = None) -> tuple[RankingRows, float]:
    """:func:`labelled_rows` of ``labels`` from models fitted on ``data`` (every event before the window)."""
    return labelled_rows(fit_window(config, stage, data, log, label, sequential, once), stage, labels,
                         max(config.evaluation.ks))


def sequential_once(stage: CandidateRankerStage, windows: RankerWindows, log: Log) -> CandidateSource | None:
    """With ``sequential.fit: once`` (or ``once_continued``), the sequential scorer fitted once on the events before
    every user's first label or validation event (``before_all``), for every window (and ``once``: for serving)."""
    spec = stage.sequential
    if spec is None or spec.fit == "per_window":
        return None
    return _fit_once(spec.source, spec.settings, windows, log, f"sequential {spec.source}")


@dataclass
class TrainingRows:
    """A ranker's training rows (every label window's) and validation rows, groups with a positive only; their
    feature names, what to report about the windows, the sequential scorer fitted once (if so configured) and the
    sources fitted once (``fit: once``)."""

    train: RankingRows
    validation: RankingRows
    names: list[str]
    windows: dict[str, Any]
    sequential_once: CandidateSource | None
    once_sources: dict[str, CandidateSource] = field(default_factory=dict)


def training_rows(config: PipelineConfig, stage: CandidateRankerStage, fit_data: Dataset, log: Log,
                  kind: str) -> TrainingRows:
    """Cut ``fit_data`` into the ranker's windows and build the rows of the label and validation windows."""
    windows = ranker_windows(fit_data, stage.label_events, stage.validation_events, stage.min_history,
                             stage.label_windows, stage.window_order, stage.seed)
    parts, recalls = [], []
    once = sequential_once(stage, windows, log)
    once_sources = fit_once_sources(config, windows, log)
    for w, (before, labels) in enumerate(windows.training):
        log(f"ranker {kind}: label window {w + 1} of {len(windows.training)}: "
            f"{labels.get_column('user_id').n_unique():,} users, {labels.height:,} label events after "
            f"{len(before):,} feature-window events")
        rows, recall = window_rows(config, stage, before, labels, log, f"training {w + 1}", once, once_sources)
        parts.append(rows)
        recalls.append(round(recall, 4))
    train = RankingRows.concat(parts)
    log(f"ranker {kind}: validation window of {windows.validation.get_column('user_id').n_unique():,} users")
    valid, valid_recall = window_rows(config, stage, windows.before_validation, windows.validation, log, "validation",
                                      once, once_sources)
    names = feature_names([s.name for s in config.sources], stage.sequential is not None, stage.embedding is not None,
                          stage.recency)
    report = {"label_events": stage.label_events, "label_windows": stage.label_windows,
              "validation_events": stage.validation_events, "min_history": stage.min_history,
              "train_candidate_recall": recalls[0] if len(recalls) == 1 else recalls,
              "validation_candidate_recall": round(valid_recall, 4)}
    return TrainingRows(train.with_positives(), valid.with_positives(), names, report, once, once_sources)


def serving_models(config: PipelineConfig, rows: TrainingRows, serving: dict[str, CandidateSource],
                   fit_data: Dataset, log: Log) -> CandidateSource | None:
    """Add the sources fitted once to ``serving``, pointed at all of ``fit_data`` (``once_continued``: trained
    further on it); the sequential scorer to serve with (the one fitted once, trained further on ``fit_data`` when
    it is ``once_continued``; else from ``serving``)."""
    stage = config.ranker
    assert isinstance(stage, CandidateRankerStage)
    continued = {s.name for s in config.sources if s.fit == "once_continued"}
    for name, model in rows.once_sources.items():
        serving[name] = _continued(model, fit_data, log, f"source {name}") if name in continued \
            else rebound(model, fit_data)
    if rows.sequential_once is not None:
        if stage.sequential is not None and stage.sequential.fit == "once_continued":
            return _continued(rows.sequential_once, fit_data, log, f"sequential {stage.sequential.source}")
        return rows.sequential_once
    return _sequential(stage, serving, fit_data, log, "serving")


def _continued(model: CandidateSource, data: Dataset, log: Log, what: str) -> CandidateSource:
    """``model`` (fitted once) trained further on ``data``, for serving (its ``continued``), logged as ``what``."""
    continued = getattr(model, "continued", None)
    if continued is None:
        raise TypeError(f"source {model.name!r} has no continued, so it cannot be fitted once_continued")
    t0 = time.perf_counter()
    out: CandidateSource = continued(data)
    log(f"{what}: fitted once, continued on all the fit data for serving in "
        f"{time.perf_counter() - t0:.1f} s{out.fit_note()}")
    return out


def fit_lambdarank_stage(config: PipelineConfig, fit_data: Dataset, serving: dict[str, CandidateSource],
                         log: Log, fit: LambdaRankFit | None = None) -> LambdaRankRanker:
    """Fit the ranker on the windows of ``fit_data``; it serves over ``serving`` (sources fitted on all of it; the
    sources fitted once are added to it, pointed at all of ``fit_data``); ``fit`` trains the trees elsewhere
    (``rankstack.distributed.boosting`` on Ray Train), as ``fit_lambdarank`` would."""
    stage = config.ranker
    assert isinstance(stage, LambdaRankStage)
    rows = training_rows(config, stage, fit_data, log, stage.kind)
    t0 = time.perf_counter()
    text, report = (fit or fit_lambdarank)(rows.train, rows.validation, rows.names, rounds=stage.rounds,
                                           early_stopping=stage.early_stopping,
                                           params={"seed": stage.seed, **stage.params}, refit=stage.refit,
                                           base=stage.base)
    report |= {"windows": rows.windows, "fit_s": round(time.perf_counter() - t0, 2)}
    log(f"ranker lambdarank: {report['best_iteration']} trees in {report['fit_s']} s, validation "
        f"ndcg@10 {report['validation_ndcg@10']}; top features: {list(report['importance_gain'])[:5]}")
    seq = serving_models(config, rows, serving, fit_data, log)
    return LambdaRankRanker(text, [s.name for s in config.sources], item_stats(stage, fit_data),
                            last_n=stage.last_n, sequential=seq, report=report, base=stage.base,
                            embedding=stage.embedding, recency=stage.recency)


def fit_neural_stage(config: PipelineConfig, fit_data: Dataset, serving: dict[str, CandidateSource],
                     log: Log) -> NeuralRanker:
    """Fit the neural ranker on the windows of ``fit_data`` (the same rows LambdaRank trains on); it serves over
    ``serving`` (sources fitted on all of it; those fitted once are added, as for :func:`fit_lambdarank_stage`)."""
    stage = config.ranker
    assert isinstance(stage, NeuralRankStage)
    rows = training_rows(config, stage, fit_data, log, stage.kind)
    net, report = fit_neural(rows.train, rows.validation, rows.names, stage.model, seed=stage.seed, base=stage.base,
                             log=log)
    report |= {"windows": rows.windows}
    log(f"ranker neural: best epoch {report['best_epoch']} of {report['epochs_run']} in {report['fit_s']} s "
        f"(stopped by {report['stopped_by']}), validation ndcg@10 {report['validation_ndcg@10']}; top features "
        f"(permutation): {list(report['importance_ndcg@10_drop'] or {})[:5]}")
    seq = serving_models(config, rows, serving, fit_data, log)
    return NeuralRanker(net, stage.model, [s.name for s in config.sources], item_stats(stage, fit_data),
                        last_n=stage.last_n, sequential=seq, report=report, base=stage.base, embedding=stage.embedding,
                        recency=stage.recency)
