"""Train the pipeline's multi-task ranker on logged impressions joined with the candidate sources' scores.

The fit window's impressions are cut by request time into three parts:

    history  (first ``history_share``)     fits the sources that score the ranker's rows
    train    (the middle)                  the ranker's training rows: shown items, engaged or not
    validation (last ``validation_share``) early stopping and per-head calibration

so a row's ``score_<source>`` comes from a source that never saw that row's click (no label leakage).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError, DataValidationError
from rankstack.experiments.multitask_run import classification_metrics, experiment_configs
from rankstack.pipeline.components import build_source
from rankstack.pipeline.config import MultiTaskRankerStage, SourceStage
from rankstack.pipeline.multitask_stage import MultiTaskStage, dense_features, prediction_names
from rankstack.ranking.impression_features import add_source_scores
from rankstack.ranking.impressions import impression_table, temporal_impression_split
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker
from rankstack.retrieval.source import CandidateSource

Log = Callable[[str], None]
# (config, training impressions, validation impressions) → the fitted, calibrated ranker
MultiTaskFit = Callable[[MultiTaskConfig, pl.DataFrame, pl.DataFrame], MultiTaskRanker]


def ranker_impressions(fit_data: Dataset) -> pl.DataFrame:
    """The impression table of the fit window (``ConfigError`` when the data has no impression log)."""
    try:
        return impression_table(fit_data)
    except DataValidationError as exc:
        raise ConfigError(
            f"ranker kind 'multitask' needs impression logs (events 'impression' with request_id and position, "
            f"plus clicks/conversions), and dataset {fit_data.name!r} has none usable: {exc}") from None


def fit_multitask(stage: MultiTaskRankerStage, sources: Sequence[SourceStage], fit_data: Dataset,
                  log: Log, fit: MultiTaskFit | None = None) -> MultiTaskStage:
    """Fit the scoring sources on the history part, then the ranker (early stopping + calibration on validation;
    ``fit``: where its network trains, e.g. DDP on Ray Train; default here)."""
    table = ranker_impressions(fit_data)
    model = experiment_configs(stage.model.model_dump(exclude_unset=True), table)[1]
    missing = sorted(stage.order_by.fields - prediction_names(model.objectives))
    if missing:
        raise ConfigError(f"ranker.order_by reads {missing}, which the multi-task ranker with objectives "
                          f"{list(model.objectives)} does not predict; it predicts "
                          f"{sorted(prediction_names(model.objectives))}")
    cut = temporal_impression_split(table, validation_start=stage.history_share,
                                    test_start=1.0 - stage.validation_share)
    history = fit_data.with_events(fit_data.events.filter(pl.col("timestamp") < cut.validation_start))
    wanted = stage.score_sources if stage.score_sources is not None else [s.name for s in sources]
    scorers = {}
    t0 = time.perf_counter()
    for source in (s for s in sources if s.name in wanted):
        scorers[source.name] = build_source(source.name, source.settings).fit(history)
    train, validation = add_source_scores(cut.validation, scorers), add_source_scores(cut.test, scorers)
    log(f"ranker multitask: {train.height:,} training / {validation.height:,} validation impressions, scored by "
        f"{sorted(scorers)} fitted on {cut.train.height:,} earlier impressions ({time.perf_counter() - t0:.1f} s)")
    t1 = time.perf_counter()
    ranker = MultiTaskRanker(model).fit(train, validation) if fit is None else fit(model, train, validation)
    calibrators = {k: v.kind for k, v in ranker.calibrators_.items()}
    log(f"ranker multitask: fitted in {time.perf_counter() - t1:.1f} s ({len(ranker.history_)} epochs, "
        f"objectives {list(model.objectives)}, calibrators {calibrators})")
    context = [c for c in fit_data.schema.context_columns if c in table.columns]
    users, items = dense_features(fit_data, context)
    return MultiTaskStage(ranker, users, items, context, list(scorers))


def evaluate_multitask(stage: MultiTaskStage, data: Dataset, held_out: Dataset,
                       sources: Mapping[str, CandidateSource]) -> dict[str, float]:
    """AUC, log-loss and ECE per head on the held-out impressions, scored as served (the pipeline's sources)."""
    shown = held_out.events.filter(pl.col("event") == "impression").get_column("request_id").unique()
    if shown.len() == 0:
        return {}
    table = impression_table(data).filter(pl.col("request_id").is_in(shown.implode()))
    table = add_source_scores(table, {name: sources[name] for name in stage.score_sources})
    return classification_metrics(stage.ranker, table)
