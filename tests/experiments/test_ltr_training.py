"""The LambdaRank stage: per-user windows, no label-window event in a feature, offline/online feature parity, and
the model's round trip through the artifact with identical scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from pipeline.conftest import config_dict, manifest_for
from rankstack.data.dataset import Dataset
from rankstack.errors import ArtifactError
from rankstack.events import Event
from rankstack.experiments.ltr_training import ranker_windows, window_rows
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.config import LambdaRankStage, validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.ranking.candidate_features import feature_names
from rankstack.ranking.lambdarank import LambdaRankRanker
from rankstack.ranking.neural_ranker import NeuralRanker
from rankstack.ranking.ranker import RankBatch
from rankstack.state.sqlite import SQLiteStateStore

RANKER: dict[str, Any] = {"kind": "lambdarank", "rounds": 20, "early_stopping": 5, "min_history": 2,
                          "attribute": "category", "base": "itemknn",
                          "params": {"min_data_in_leaf": 5, "num_threads": 1, "learning_rate": 0.2}}


def keys(frame: pl.DataFrame) -> set[tuple[int, int, Any]]:
    return set(frame.select("user_id", "item_id", "timestamp").iter_rows())


def test_windows_cut_each_users_tail(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    w = ranker_windows(fit, label_events=2, validation_events=1, min_history=2)
    per_user = fit.events.group_by("user_id").len()
    assert w.labels.group_by("user_id").len().get_column("len").unique().to_list() == [2]
    assert w.validation.height == per_user.height  # every user of the small log has enough events
    assert not keys(w.before_labels.events) & (keys(w.labels) | keys(w.validation))
    assert keys(w.before_validation.events) == keys(w.before_labels.events) | keys(w.labels)
    assert len(w.before_validation) + w.validation.height == len(fit)
    latest = w.before_labels.events.group_by("user_id").agg(pl.col("timestamp").max().alias("last"))
    first = w.labels.group_by("user_id").agg(pl.col("timestamp").min().alias("first"))
    assert (latest.join(first, on="user_id").select(pl.col("last") <= pl.col("first")).to_series()).all()


def test_earlier_label_windows_lie_back_to_back_before_the_latest(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    w = ranker_windows(fit, label_events=1, validation_events=1, min_history=2, label_windows=3)
    assert len(w.training) == 3 and w.training[0] == (w.before_labels, w.labels)
    later = keys(w.labels) | keys(w.validation)
    for before, labels in w.earlier:
        assert labels.group_by("user_id").len().get_column("len").unique().to_list() == [1]
        assert not keys(labels) & later  # windows do not overlap
        assert not keys(before.events) & keys(labels)
        cut = labels.group_by("user_id").agg(pl.col("timestamp").min().alias("first"))
        kept = before.events.join(cut, on="user_id").filter(pl.col("timestamp") >= pl.col("first"))
        assert kept.height == 0  # a labelled user's feature window ends before its labels (no later event)
        later |= keys(labels)
    one = ranker_windows(fit, label_events=1, validation_events=1, min_history=2)
    assert keys(one.labels) == keys(w.labels) and keys(one.validation) == keys(w.validation)


def test_users_with_short_histories_stay_in_the_feature_window(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    w = ranker_windows(fit, label_events=3, validation_events=3, min_history=100)
    assert w.labels.height == 0 and w.validation.height == 0 and len(w.before_labels) == len(fit)


@pytest.mark.parametrize("window", [0, 1])
def test_no_label_window_event_reaches_a_feature(small_split: tuple[Dataset, Dataset], window: int) -> None:
    """Change every item of a label window and everything after it: that window's training rows' features
    stay equal to the last bit."""
    fit, _ = small_split
    config = validate_pipeline_config(config_dict(ranker=RANKER))
    stage = config.ranker
    assert isinstance(stage, LambdaRankStage)
    w = ranker_windows(fit, 1, 1, 2, label_windows=2)
    before, labels = w.training[window]
    first = labels.group_by("user_id").agg(pl.col("timestamp").min().alias("_first"))
    marked = fit.events.join(first, on="user_id", how="left").with_columns(
        (pl.col("_first").is_not_null() & (pl.col("timestamp") >= pl.col("_first"))).alias("_label")).drop("_first")
    changed = marked.with_columns(pl.when(pl.col("_label")).then((pl.col("item_id") + 7) % fit.n_items)
                                  .otherwise(pl.col("item_id")).alias("item_id")).drop("_label")
    assert (changed.get_column("item_id") != fit.events.get_column("item_id")).sum() >= labels.height
    w2 = ranker_windows(fit.with_events(changed), 1, 1, 2, label_windows=2)
    rows, _ = window_rows(config, stage, before, labels, lambda _m: None, "training")
    rows2, _ = window_rows(config, stage, *w2.training[window], lambda _m: None, "training")
    assert np.array_equal(rows.features, rows2.features, equal_nan=True)
    assert rows.groups.tolist() == rows2.groups.tolist()
    assert not np.array_equal(rows.labels, rows2.labels)  # the labels did read the window


@pytest.fixture(scope="module")
def trained(small_split: tuple[Dataset, Dataset]) -> Pipeline:
    fit, _ = small_split
    config = validate_pipeline_config(config_dict(ranker=RANKER))
    return Pipeline(fit_stages(config, fit, lambda _m: None))


def captured_features(pipeline: Pipeline, calls: list[RankBatch]) -> Any:
    ranker = pipeline.parts.ranker
    assert isinstance(ranker, LambdaRankRanker)
    original = ranker.score

    def spy(batch: RankBatch) -> dict[str, np.ndarray]:
        calls.append(batch)
        return original(batch)

    return spy


def test_online_requests_get_the_offline_features(trained: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    ranker = trained.parts.ranker
    assert isinstance(ranker, LambdaRankRanker)
    assert ranker.report["best_iteration"] >= 1 and ranker.report["importance_gain"]
    users = np.array([0, 3, 5, 11])
    offline, offline_valid = ranker.features(trained.rank_inputs(users, 10))
    calls: list[RankBatch] = []
    monkeypatch.setattr(ranker, "score", captured_features(trained, calls))
    external = trained.parts.user_map.to_external_list(users)
    out = trained.recommend([RecommendRequest(user_id=str(u), k=10) for u in external], stage_deadlines=False)
    assert all(r.items for r in out) and len(calls) == 1
    online, online_valid = ranker.features(calls[0])
    assert np.array_equal(offline_valid, online_valid)
    assert np.array_equal(offline, online, equal_nan=True)


@pytest.fixture(scope="module")
def trained_recency(small_split: tuple[Dataset, Dataset]) -> Pipeline:
    fit, _ = small_split
    config = validate_pipeline_config(config_dict(ranker={**RANKER, "recency": True}))
    return Pipeline(fit_stages(config, fit, lambda _m: None))


def test_training_rows_are_timed_at_the_label_window(small_split: tuple[Dataset, Dataset]) -> None:
    """A row's days since the last event: from the user's last feature-window event to its first label event."""
    fit, _ = small_split
    config = validate_pipeline_config(config_dict(ranker={**RANKER, "recency": True}))
    stage = config.ranker
    assert isinstance(stage, LambdaRankStage)
    before, labels = ranker_windows(fit, 1, 1, 2).training[0]
    rows, _ = window_rows(config, stage, before, labels, lambda _m: None, "training")
    first = dict(labels.group_by("user_id").agg(pl.col("timestamp").min()).iter_rows())
    last = dict(before.events.group_by("user_id").agg(pl.col("timestamp").max()).iter_rows())
    want = np.repeat([(first[u] - last[u]).total_seconds() / 86_400 for u in rows.users.tolist()], rows.groups)
    assert np.allclose(rows.features[:, -1], want, rtol=1e-6)
    assert (want > 0).all()


def test_served_recency_matches_offline_and_reads_fresh_events(trained_recency: Pipeline, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ranker = trained_recency.parts.ranker
    assert isinstance(ranker, LambdaRankRanker) and ranker.needs_times
    assert ranker.feature_names[-1] == "since_last_days"
    users = np.array([0, 3, 5])
    at = 1_700_100_000.0
    offline, _ = ranker.features(trained_recency.rank_inputs(users, 10, times=np.full(3, at)))
    calls: list[RankBatch] = []
    monkeypatch.setattr(ranker, "score", captured_features(trained_recency, calls))
    external = [str(u) for u in trained_recency.parts.user_map.to_external_list(users)]
    trained_recency.recommend([RecommendRequest(user_id=u, k=10, time=at) for u in external], stage_deadlines=False)
    online, _ = ranker.features(calls[0])
    assert np.array_equal(offline, online, equal_nan=True)
    store = SQLiteStateStore(tmp_path / "state.db")
    store.add_events([Event(event_id="e1", user_id=external[1], item_id="i1", event="click", timestamp=at - 3600)])
    trained_recency.recommend([RecommendRequest(user_id=u, k=10, time=at) for u in external], store,
                              stage_deadlines=False)
    def per_row(batch: RankBatch) -> np.ndarray:
        """The one recency value of each row (every candidate of a row shares it)."""
        matrix, valid = ranker.features(batch)
        rows = np.repeat(np.arange(len(valid)), valid.sum(axis=1))
        values = [np.unique(matrix[rows == r, -1]) for r in range(len(valid))]
        assert all(len(v) == 1 for v in values)
        return np.array([v[0] for v in values])

    before, after = per_row(calls[0]), per_row(calls[1])
    assert after[1] == pytest.approx(1 / 24, rel=1e-5) and before[1] > 1 / 24  # the fresh click is the latest
    assert after[[0, 2]].tolist() == before[[0, 2]].tolist()
    untimed, _ = ranker.features(trained_recency.rank_inputs(users, 10))
    assert np.isnan(untimed[:, -1]).all()


def test_model_round_trips_through_the_artifact(trained: Pipeline, tmp_path: Path) -> None:
    out = save_artifact(trained.parts, manifest_for(trained), tmp_path / "art")
    loaded = Pipeline.load(out)
    assert isinstance(loaded.parts.ranker, LambdaRankRanker) and isinstance(trained.parts.ranker, LambdaRankRanker)
    assert loaded.parts.ranker.report["best_iteration"] == trained.parts.ranker.report["best_iteration"]
    users = np.arange(12)
    before = trained.parts.ranker.score(trained.rank_inputs(users, 10))["relevance"]
    after = loaded.parts.ranker.score(loaded.rank_inputs(users, 10))["relevance"]
    assert np.isfinite(before).any()
    assert np.array_equal(before, after, equal_nan=True)
    assert np.array_equal(trained.recommend_batch(users, 10).item_ids, loaded.recommend_batch(users, 10).item_ids)


def test_a_changed_model_fails_its_checksum(trained: Pipeline, tmp_path: Path) -> None:
    trained.parts.ranker.save(tmp_path, trained.parts.sources)  # type: ignore[union-attr]
    model = tmp_path / "ranker" / "model.txt"
    model.write_text(model.read_text(encoding="utf-8").replace("shrinkage=", "shrinkage=1", 1), encoding="utf-8")
    with pytest.raises(ArtifactError, match="SHA-256"):
        LambdaRankRanker.load(tmp_path, "ranker", trained.parts.sources, lambda _p: None)  # type: ignore[arg-type,return-value]



def record_fits(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Dataset]:
    """The datasets every source ``name`` built by the ranker's training is fitted on, in order."""
    import rankstack.experiments.ltr_training as ltr

    fitted: list[Dataset] = []
    original = ltr.build_source

    def spy(source_name: str, settings: dict[str, Any]) -> Any:
        source = original(source_name, settings)
        if source_name == name:
            real_fit = source.fit
            source.fit = lambda data: (fitted.append(data), real_fit(data))[1]  # type: ignore[method-assign]
        return source

    monkeypatch.setattr(ltr, "build_source", spy)
    return fitted


def record_continuations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Dataset, Any]]:
    """(the model fitted once, the data, the continued model) of every ``SASRec.continued`` call, in order."""
    from rankstack.sequential.sasrec import SASRec

    calls: list[tuple[Any, Dataset, Any]] = []
    original = SASRec.continued

    def spy(model: SASRec, data: Dataset) -> SASRec:
        calls.append((model, data, original(model, data)))
        return calls[-1][2]  # type: ignore[no-any-return]

    monkeypatch.setattr(SASRec, "continued", spy)
    return calls


def test_a_sequential_scorer_fitted_once_sees_no_window_event(small_split: tuple[Dataset, Dataset],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``sequential.fit: once``: one fit, on data without any label or validation event, reused at serving."""

    fit, _ = small_split
    seq = {"source": "als", "settings": {"factors": 4, "iterations": 2}, "fit": "once"}
    config = validate_pipeline_config(config_dict(ranker={**RANKER, "label_windows": 2, "sequential": seq}))
    fitted = record_fits(monkeypatch, "als")
    pipeline = Pipeline(fit_stages(config, fit, lambda _m: None))
    assert len(fitted) == 1
    w = ranker_windows(fit, 1, 1, 2, label_windows=2)
    held = keys(w.validation).union(*(keys(labels) for _b, labels in w.training))
    assert held and not keys(fitted[0].events) & held
    ranker = pipeline.parts.ranker
    assert isinstance(ranker, LambdaRankRanker) and ranker.sequential is not None
    assert "seq_score" in ranker.feature_names


def test_a_source_fitted_once_follows_each_windows_histories(small_split: tuple[Dataset, Dataset],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``fit: once`` source: one fit, on data without any label or validation event; each window's candidates
    come from that model reading the window's histories; it serves reading every fit event; its score is also
    the sequential feature."""
    import rankstack.experiments.ltr_training as ltr
    from rankstack.sequential.sasrec import SASRec

    fit, _ = small_split
    sasrec = {"name": "sasrec", "fit": "once", "k": 20, "quota": 5,
              "settings": {"max_len": 8, "hidden_dim": 8, "epochs": 2, "device": "cpu"}}
    sources = [*config_dict()["sources"], sasrec]
    config = validate_pipeline_config(config_dict(sources=sources, merge={"k": 40}, ranker={
        **RANKER, "label_windows": 2, "sequential": {"source": "sasrec"}}))
    fitted = record_fits(monkeypatch, "sasrec")
    moved: list[Dataset] = []
    original_rebound = ltr.rebound

    def spy_rebound(model: Any, data: Dataset) -> Any:
        moved.append(data)
        return original_rebound(model, data)

    monkeypatch.setattr(ltr, "rebound", spy_rebound)
    messages: list[str] = []
    pipeline = Pipeline(fit_stages(config, fit, messages.append))
    assert len(fitted) == 1
    assert any(m.startswith("ranker: source sasrec fitted once") and "2 epochs (best" in m for m in messages)
    w = ranker_windows(fit, 1, 1, 2, label_windows=2)
    held = keys(w.validation).union(*(keys(labels) for _b, labels in w.training))
    assert held and not keys(fitted[0].events) & held
    windows = [before for before, _labels in w.training] + [w.before_validation]
    assert [len(d) for d in moved] == [len(d) for d in windows] + [len(fit)]  # each window's, then serving's
    served = pipeline.parts.sources["sasrec"]
    assert isinstance(served, SASRec) and list(pipeline.parts.sources) == ["popular", "itemknn", "sasrec"]
    assert [len(h) for h in served.histories_] == [len(h) for h in fit.sequences()]
    ranker = pipeline.parts.ranker
    assert isinstance(ranker, LambdaRankRanker) and ranker.sequential is served
    assert {"seq_score", "score_sasrec"} <= set(ranker.feature_names)
    out = pipeline.recommend([RecommendRequest(user_id=str(u), k=5)
                              for u in fit.user_map.to_external_list([0, 1, 2])], stage_deadlines=False)
    assert all(len(r.items) == 5 for r in out)


def test_a_source_fitted_once_and_continued_serves_with_weights_trained_on_every_fit_event(
        small_split: tuple[Dataset, Dataset], monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit: once_continued``: the windows read the once-fitted model; serving (source and sequential feature)
    reads a new model whose training started from those weights and went on over all the fit data."""
    import torch

    from rankstack.sequential.sasrec import SASRec

    fit, _ = small_split
    sasrec = {"name": "sasrec", "fit": "once_continued", "k": 20, "quota": 5,
              "settings": {"max_len": 8, "hidden_dim": 8, "epochs": 3, "device": "cpu"}}
    config = validate_pipeline_config(config_dict(sources=[*config_dict()["sources"], sasrec], merge={"k": 40},
                                                  ranker={**RANKER, "sequential": {"source": "sasrec"}}))
    fitted = record_fits(monkeypatch, "sasrec")
    continued = record_continuations(monkeypatch)
    messages: list[str] = []
    pipeline = Pipeline(fit_stages(config, fit, messages.append))
    assert len(fitted) == 1 and len(continued) == 1
    once, data, _ = continued[0]
    assert data is fit
    served = pipeline.parts.sources["sasrec"]
    assert isinstance(served, SASRec) and served is not once
    assert [len(h) for h in served.histories_] == [len(h) for h in fit.sequences()]
    summary = served.fit_summary()
    assert summary is not None and summary.curve[0][0] == 0  # the starting weights are validated first
    same = [torch.equal(a, b) for a, b in zip(once.net_.state_dict().values(), served.net_.state_dict().values(),
                                              strict=True)]
    assert all(same) == (summary.best_epoch == 0)  # kept only when no epoch beat them
    assert any(m.startswith("source sasrec: fitted once, continued on all the fit data") for m in messages)
    ranker = pipeline.parts.ranker
    assert isinstance(ranker, LambdaRankRanker) and ranker.sequential is served


def test_a_sequential_scorer_fitted_once_and_continued_serves_with_the_continued_model(
        small_split: tuple[Dataset, Dataset], monkeypatch: pytest.MonkeyPatch) -> None:
    """``sequential.fit: once_continued``: one fit before the windows, then one continuation on all the fit data,
    which is the scorer the ranker serves with."""

    fit, _ = small_split
    seq = {"source": "sasrec", "settings": {"max_len": 8, "hidden_dim": 8, "epochs": 2, "device": "cpu"},
           "fit": "once_continued"}
    config = validate_pipeline_config(config_dict(ranker={**RANKER, "sequential": seq}))
    fitted = record_fits(monkeypatch, "sasrec")
    continued = record_continuations(monkeypatch)
    messages: list[str] = []
    pipeline = Pipeline(fit_stages(config, fit, messages.append))
    assert len(fitted) == 1 and len(continued) == 1
    _, data, served = continued[0]
    assert data is fit
    ranker = pipeline.parts.ranker
    assert isinstance(ranker, LambdaRankRanker) and ranker.sequential is served
    assert any(m.startswith("sequential sasrec: fitted once, continued") for m in messages)


def test_random_windows_hold_out_shuffled_events(small_split: tuple[Dataset, Dataset]) -> None:
    """``order="random"``: windows are seeded random holdouts of each user's events; the feature window keeps
    every other event, later ones included; another seed draws other events."""
    fit, _ = small_split
    w = ranker_windows(fit, label_events=1, validation_events=1, min_history=2, label_windows=2, order="random")
    assert w.labels.group_by("user_id").len().get_column("len").unique().to_list() == [1]
    held = keys(w.labels) | keys(w.validation)
    assert not keys(w.before_labels.events) & held
    assert keys(w.before_labels.events) | held == keys(fit.events)  # nothing else is dropped
    timed = ranker_windows(fit, label_events=1, validation_events=1, min_history=2, label_windows=2)
    assert keys(w.labels) != keys(timed.labels)
    assert keys(w.validation) == keys(ranker_windows(fit, 1, 1, 2, 2, "random").validation)  # seeded
    assert keys(w.validation) != keys(ranker_windows(fit, 1, 1, 2, 2, "random", seed=1).validation)
    assert w.before_all is not None
    every = held.union(*(keys(labels) for _b, labels in w.earlier))
    assert keys(w.before_all.events) == keys(fit.events) - every
    with pytest.raises(ValueError, match="order must be"):
        ranker_windows(fit, order="shuffled")


def test_the_once_fit_excludes_users_outside_the_earliest_window(small_split: tuple[Dataset, Dataset]) -> None:
    """Users too short for the earliest window still lose their later windows' and validation events."""
    fit, _ = small_split
    w = ranker_windows(fit, label_events=2, validation_events=1, min_history=2, label_windows=3)
    assert w.before_all is not None
    held = keys(w.validation).union(*(keys(labels) for _b, labels in w.training))
    in_latest = set(w.labels.get_column("user_id").to_list())
    in_earliest = set(w.training[-1][1].get_column("user_id").to_list())
    assert in_latest - in_earliest  # the case: some users are in a later window only
    assert not keys(w.before_all.events) & held


def test_a_pipeline_trains_on_random_windows(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    ranker = {**RANKER, "window_order": "random", "label_windows": 2}
    pipeline = Pipeline(fit_stages(validate_pipeline_config(config_dict(ranker=ranker)), fit, lambda _m: None))
    assert isinstance(pipeline.parts.ranker, LambdaRankRanker)
    assert pipeline.parts.ranker.report["windows"]["label_windows"] == 2
    assert len(pipeline.parts.ranker.report["windows"]["train_candidate_recall"]) == 2


def test_a_learned_ranker_trains_under_a_learning_exploration_policy(small_split: tuple[Dataset, Dataset]) -> None:
    """The windows' candidate pipelines carry no exploration stage: a learning policy's features are fitted after
    the ranker (this raised "learns online but the pipeline has no policy features" before)."""
    fit, _ = small_split
    config = config_dict(ranker={**RANKER, "label_windows": 1},
                         exploration={"policy": "linucb", "pool": 10, "seed": 0, "learning": {"dim": 4}})
    pipeline = Pipeline(fit_stages(validate_pipeline_config(config), fit, lambda _m: None))
    assert isinstance(pipeline.parts.ranker, LambdaRankRanker)
    assert pipeline.parts.policy is not None and pipeline.online is not None
    user = str(pipeline.parts.user_map.to_external_list([0])[0])
    slate = pipeline.recommend([RecommendRequest(user_id=user, k=5)], stage_deadlines=False)[0]
    assert len(slate.items) == 5 and all(item.propensity is not None for item in slate.items)


NEURAL: dict[str, Any] = {"kind": "neural", "min_history": 2, "attribute": "category", "base": "itemknn",
                          "model": {"epochs": 3, "mlp_dims": [8], "expert_dims": [8], "tower_dims": [4]}}


@pytest.fixture(scope="module")
def trained_neural(small_split: tuple[Dataset, Dataset]) -> Pipeline:
    fit, _ = small_split
    return Pipeline(fit_stages(validate_pipeline_config(config_dict(ranker=NEURAL)), fit, lambda _m: None))


def test_neural_ranker_trains_on_the_same_rows_and_round_trips(trained_neural: Pipeline, tmp_path: Path) -> None:
    ranker = trained_neural.parts.ranker
    assert isinstance(ranker, NeuralRanker)
    assert 1 <= ranker.report["best_epoch"] <= 3 and ranker.report["windows"]["label_events"] == 1
    assert ranker.feature_names == feature_names(list(trained_neural.parts.sources), False, False)
    loaded = Pipeline.load(save_artifact(trained_neural.parts, manifest_for(trained_neural), tmp_path / "art"))
    assert isinstance(loaded.parts.ranker, NeuralRanker)
    users = np.arange(12)
    before = ranker.score(trained_neural.rank_inputs(users, 10))["relevance"]
    after = loaded.parts.ranker.score(loaded.rank_inputs(users, 10))["relevance"]
    assert np.isfinite(before).any() and np.array_equal(before, after, equal_nan=True)
    assert np.array_equal(trained_neural.recommend_batch(users, 10).item_ids,
                          loaded.recommend_batch(users, 10).item_ids)
