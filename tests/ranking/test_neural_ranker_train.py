"""Neural ranker fitting: the listwise loss and NDCG by hand, the loss falls and the planted order is learned on a
separable toy problem, bad inputs are refused, a time budget stops the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rankstack.ranking.lambdarank_train import RankingRows
from rankstack.ranking.neural_ranker import NeuralRankerConfig, RankingNet
from rankstack.ranking.neural_ranker_train import (
    fit_neural,
    group_ndcg,
    padded_index,
    permutation_importance,
    softmax_loss,
)

SMALL = {"mlp_dims": [16], "expert_dims": [8], "tower_dims": [8], "cross_rank": 8, "batch_groups": 8,
         "importance": True}


def planted(groups: int, size: int, seed: int, nan_share: float = 0.0) -> RankingRows:
    """Groups of ``size`` rows; the one positive has the largest column 0 / 50 − column 1 (linearly separable),
    column 2 is noise (some of it NaN)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(groups * size, 3)).astype(np.float32)
    feats[:, 0] *= 50.0  # a wide column: the scaler must standardise it
    signal = feats[:, 0] / 50.0 - feats[:, 1]
    labels = np.zeros(groups * size)
    for g in range(groups):
        labels[g * size + int(np.argmax(signal[g * size: (g + 1) * size]))] = 1.0
    feats[rng.random(len(feats)) < nan_share, 2] = np.nan
    return RankingRows(feats, labels, np.full(groups, size, np.int64), np.arange(groups))


def test_padded_index_lays_groups_out_in_rows() -> None:
    assert padded_index(np.array([2, 3, 1])).tolist() == [[0, 1, -1], [2, 3, 4], [5, -1, -1]]


def test_softmax_loss_by_hand() -> None:
    scores = torch.tensor([[0.0, math.log(3.0), 5.0], [1.0, 1.0, 0.0]])
    labels = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # group 1: the pad is out, p = (1/4, 3/4) → −log 3/4; group 2: half the target on each of two e/(2e + 1)
    expected = (-math.log(0.75) - math.log(math.e / (2 * math.e + 1))) / 2
    assert float(softmax_loss(scores, labels, mask)) == pytest.approx(expected, rel=1e-6)


def test_group_ndcg_by_hand() -> None:
    rows = RankingRows(np.zeros((5, 1), np.float32), np.array([0, 1, 0, 0, 1.0]), np.array([3, 2]))
    scores = np.array([3.0, 2.0, 1.0, 5.0, 4.0])  # group 1: the positive second; group 2: second as well
    assert group_ndcg(scores, rows, k=10) == pytest.approx(1 / math.log2(3))
    assert group_ndcg(scores, rows, k=1) == 0.0


def full_loss(net: RankingNet, rows: RankingRows) -> float:
    """The softmax loss of ``net`` over every group of ``rows``."""
    index = torch.from_numpy(padded_index(rows.groups))
    mask = index >= 0
    with torch.no_grad():
        scores = net(torch.from_numpy(rows.features))[index.clamp(min=0)]
    return float(softmax_loss(scores, torch.from_numpy(rows.labels).float()[index.clamp(min=0)], mask))


def test_loss_falls_and_the_planted_order_is_learned() -> None:
    train, names = planted(60, 30, 0, 0.2), ["wide", "narrow", "gappy"]
    config = NeuralRankerConfig(**SMALL, epochs=10, patience=10, lr=3e-2)
    torch.manual_seed(0)
    untrained = RankingNet(3, 1, config)
    untrained.scale.fit(train.features, True)
    net, report = fit_neural(train, planted(30, 30, 1, 0.2), names, config, seed=0)
    start, end = full_loss(untrained, train), full_loss(net, train)
    assert start == pytest.approx(math.log(30), abs=0.1)  # a near-constant scorer: uniform over 30 rows
    assert end < 0.5 * start, report["train_loss"]
    assert report["validation_ndcg@10"] > 0.85  # random order of 30 with one positive: ≈ 0.15
    assert report["missing_indicators"] == ["gappy"]
    importance = report["importance_ndcg@10_drop"]
    assert set(list(importance)[:2]) == {"wide", "narrow"} and importance["gappy"] < 0.05 < importance["narrow"]
    test = planted(20, 30, 2, 0.2)
    with torch.inference_mode():
        scores = net(torch.from_numpy(test.features)).numpy()
    assert np.isfinite(scores).all() and group_ndcg(scores.astype(np.float64), test) > 0.8


@pytest.mark.parametrize(("case", "train", "names", "message"), [
    ("no positive", RankingRows(np.zeros((4, 3), np.float32), np.zeros(4), np.array([2, 2])), ["a", "b", "c"],
     "nothing to learn from"),
    ("names", planted(4, 3, 0), ["a", "b"], "2 feature names for rows of 3"),
])
def test_bad_inputs_are_refused(case: str, train: RankingRows, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_neural(train, planted(4, 3, 1), names, NeuralRankerConfig(**SMALL, epochs=1))


def test_a_time_budget_stops_training() -> None:
    config = NeuralRankerConfig(**SMALL, epochs=1000, patience=1000, time_budget_s=0.3)
    _, report = fit_neural(planted(40, 10, 0), planted(10, 10, 1), ["a", "b", "c"], config)
    assert report["stopped_by"] == "budget" and report["epochs_run"] < 1000
    assert report["best_epoch"] is not None and report["best_epoch"] <= report["epochs_run"]


def test_training_leaves_torch_threads_as_they_were() -> None:
    before = torch.get_num_threads()
    fit_neural(planted(8, 5, 0), planted(4, 5, 1), ["a", "b", "c"], NeuralRankerConfig(**SMALL, epochs=1, threads=1))
    assert torch.get_num_threads() == before


def test_permutation_importance_reads_a_sample_of_groups() -> None:
    rows, names = planted(40, 30, 3), ["wide", "narrow", "gappy"]
    config = NeuralRankerConfig(**SMALL, epochs=6, lr=3e-2)
    net, _ = fit_neural(planted(60, 30, 0), rows, names, config)
    prior = torch.zeros(len(rows.labels), dtype=torch.float64)
    sampled = permutation_importance(net, rows, names, prior, groups=10)
    assert list(sampled) != [] and set(sampled) == set(names)
    assert sampled == permutation_importance(net, rows, names, prior, groups=10)  # seeded
    whole = permutation_importance(net, rows, names, prior, groups=40)
    assert whole["narrow"] > 0.05 and abs(whole["gappy"]) < 0.05
