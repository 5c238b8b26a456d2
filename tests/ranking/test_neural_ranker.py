"""The neural ranker at serving: the input scaler by hand, scores over a RankBatch, identical scores after a round
trip through safetensors + JSON, a changed weight file fails its checksum, a feature count that differs is refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.errors import ArtifactError
from rankstack.ranking.candidate_features import ItemStats, feature_names
from rankstack.ranking.lambdarank_train import RankingRows
from rankstack.ranking.neural_ranker import InputScaler, NeuralRanker, NeuralRankerConfig, RankingNet
from rankstack.ranking.neural_ranker_train import fit_neural
from rankstack.ranking.ranker import RankBatch

SMALL = NeuralRankerConfig(mlp_dims=(8,), expert_dims=(8,), tower_dims=(4,), cross_rank=4, epochs=2)
SOURCES = ["a", "b"]


def test_scaler_standardises_fills_and_flags_missing() -> None:
    rows = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [np.nan, 5.0, 4.0]], np.float32)
    scaler = InputScaler(3, 2).fit(rows, log_inputs=False)
    assert scaler.missing.tolist() == [0, 2] and scaler.mean.tolist() == pytest.approx([2.0, 5.0, 3.0])
    assert scaler.std.tolist() == pytest.approx([1.0, 1.0, 1.0])  # a constant column keeps std 1
    out = scaler(torch.from_numpy(rows)).numpy()
    assert np.allclose(out, [[-1, 0, 0, 0, 1], [1, 0, -1, 0, 0], [0, 0, 1, 1, 0]])


def test_scaler_built_for_other_missing_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="1 columns with a missing value, the scaler was built for 0"):
        InputScaler(2, 0).fit(np.array([[1.0, np.nan], [2.0, 3.0]], np.float32), log_inputs=False)


def test_scaler_log_compresses_before_standardising() -> None:
    rows = np.array([[-(np.e - 1)], [np.e - 1]], np.float32)  # sign(x)·log(1 + |x|) = ∓1
    scaler = InputScaler(1, 0).fit(rows, log_inputs=True)
    assert scaler.mean.tolist() == pytest.approx([0.0], abs=1e-6) and scaler.std.tolist() == pytest.approx([1.0])
    assert scaler(torch.from_numpy(rows)).flatten().tolist() == pytest.approx([-1.0, 1.0], rel=1e-5)


def tiny() -> Dataset:
    rows = [("u", "x", 0), ("u", "y", 1), ("v", "x", 2), ("v", "z", 3), ("w", "y", 4), ("w", "z", 5)]
    events = pl.DataFrame([(u, i, datetime(2020, 1, 1) + timedelta(days=d)) for u, i, d in rows],
                          schema=["user_id", "item_id", "timestamp"], orient="row")
    return Dataset.from_events(events, name="tiny")


@pytest.fixture(scope="module")
def ranker() -> NeuralRanker:
    """A neural ranker fitted for two epochs on random rows of the real feature width, with a base prior."""
    names = feature_names(SOURCES, False)
    rng = np.random.default_rng(0)

    def rows(groups: int) -> RankingRows:
        feats = rng.normal(size=(groups * 4, len(names))).astype(np.float32)
        feats[:, names.index("rank_b")] = rng.integers(1, 5, len(feats))
        feats[::3, names.index("score_a")] = np.nan
        labels = np.tile([1.0, 0.0, 0.0, 0.0], groups)
        return RankingRows(feats, labels, np.full(groups, 4, np.int64))

    net, report = fit_neural(rows(10), rows(5), names, SMALL, base="b")
    return NeuralRanker(net, SMALL, SOURCES, ItemStats.from_dataset(tiny(), attribute=None), report=report, base="b")


def batch() -> RankBatch:
    items = np.array([[0, 1, 2], [2, 0, -1]])
    scores = {"a": np.array([[0.9, np.nan, 0.1], [0.3, 0.2, np.nan]]),
              "b": np.array([[np.nan, 2.0, 1.0], [5.0, np.nan, np.nan]])}
    return RankBatch(np.array([0, 1]), items, [np.array([1]), np.array([0, 2])], source_scores=scores)


def test_scores_are_finite_on_candidates_and_nan_on_pads(ranker: NeuralRanker) -> None:
    out = ranker.score(batch())["relevance"]
    assert np.isfinite(out[0]).all() and np.isfinite(out[1, :2]).all() and np.isnan(out[1, 2])


def test_round_trip_gives_identical_scores(ranker: NeuralRanker, tmp_path: Path) -> None:
    assert ranker.save(tmp_path, {}) == "ranker"
    assert not list((tmp_path / "ranker").glob("*.pkl"))
    back = NeuralRanker.load(tmp_path, "ranker", {}, lambda _p: None)  # type: ignore[arg-type,return-value]
    assert back.base == "b" and back.config == SMALL and back.report["epochs_run"] == ranker.report["epochs_run"]
    assert np.array_equal(back.score(batch())["relevance"], ranker.score(batch())["relevance"], equal_nan=True)


def test_a_changed_weight_file_fails_its_checksum(ranker: NeuralRanker, tmp_path: Path) -> None:
    ranker.save(tmp_path, {})
    weights = tmp_path / "ranker" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        NeuralRanker.load(tmp_path, "ranker", {}, lambda _p: None)  # type: ignore[arg-type,return-value]


def test_a_network_of_another_width_is_refused(ranker: NeuralRanker) -> None:
    with pytest.raises(ValueError, match="the network reads 3 features"):
        NeuralRanker(RankingNet(3, 0, SMALL), SMALL, SOURCES, ranker.stats)
    with pytest.raises(ValueError, match="base source 'c'"):
        NeuralRanker(ranker.net, SMALL, SOURCES, ranker.stats, base="c")
