"""LambdaRank fitting: groups without positives are dropped; a planted signal is learned and ranked first by gain."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rankstack.progress import PlainProgress
from rankstack.ranking import lambdarank_train
from rankstack.ranking.lambdarank import MISSING_RANK, prior_scores
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank


def planted(groups: int, size: int, seed: int) -> RankingRows:
    """Groups of ``size`` rows: the one positive has the largest column 0 (plus noise), columns 1-2 are noise."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(groups * size, 3)).astype(np.float32)
    labels = np.zeros(groups * size)
    for g in range(groups):
        block = feats[g * size: (g + 1) * size]
        hit = int(np.argmax(block[:, 0] + 0.3 * rng.normal(size=size)))
        labels[g * size + hit] = 1.0
    return RankingRows(feats, labels, np.full(groups, size, np.int64), np.arange(groups))


def test_with_positives_keeps_only_groups_with_a_positive() -> None:
    rows = RankingRows(np.arange(10, dtype=np.float32).reshape(5, 2), np.array([0, 0, 1, 0, 0.0]),
                       np.array([2, 2, 1]), np.array([7, 8, 9]))
    kept = rows.with_positives()
    assert kept.groups.tolist() == [2]
    assert kept.users.tolist() == [8]
    assert kept.features.tolist() == [[4, 5], [6, 7]]
    assert kept.labels.tolist() == [1, 0]


def test_fit_learns_the_planted_feature() -> None:
    text, report = fit_lambdarank(planted(200, 20, 0), planted(100, 20, 1), ["signal", "noise_a", "noise_b"],
                                  rounds=60, early_stopping=20, params={"min_data_in_leaf": 5, "num_threads": 1})
    assert text.startswith("tree")
    assert next(iter(report["importance_gain"])) == "signal"
    assert report["validation_ndcg@10"] > 0.7  # random order of 20 with one positive: ~0.25
    assert 1 <= report["best_iteration"] <= 60


def test_fit_without_positive_groups_says_so() -> None:
    empty = RankingRows(np.zeros((0, 3), np.float32), np.zeros(0), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="nothing to learn"):
        fit_lambdarank(empty, planted(5, 4, 0), ["a", "b", "c"])


def test_prior_is_the_base_sources_discounted_rank() -> None:
    feats = np.array([[0.5, 1.0], [0.1, 3.0], [np.nan, np.nan]], np.float32)
    prior = prior_scores(feats, ["score_s", "rank_s"], "s")
    assert prior.tolist() == pytest.approx([-1.0, -2.0, -np.log2(1 + MISSING_RANK)])
    assert prior_scores(feats, ["score_s", "rank_s"], None).tolist() == [0, 0, 0]


def test_a_base_starts_the_model_at_that_order() -> None:
    """With the base's rank as the planted signal's order, the trees add little: validation NDCG is high from
    the first round."""
    def ranked(rows: RankingRows) -> RankingRows:
        feats = rows.features.copy()
        bounds = np.concatenate([[0], np.cumsum(rows.groups)])
        for g in range(len(rows.groups)):
            block = feats[bounds[g]: bounds[g + 1]]
            block[:, 1] = np.argsort(np.argsort(-block[:, 0])) + 1  # column 1 = rank by the signal
        return RankingRows(feats, rows.labels, rows.groups)

    train, valid = ranked(planted(100, 20, 0)), ranked(planted(50, 20, 1))
    _, report = fit_lambdarank(train, valid, ["score_s", "rank_s", "noise"], rounds=5, early_stopping=5,
                               params={"min_data_in_leaf": 5}, base="s")
    assert report["validation_curve"][0] > 0.7 and report["base"] == "s"


def test_fit_reports_each_round_with_its_validation_ndcg(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(lambdarank_train, "new_progress", lambda: PlainProgress(out, every_s=0.0))
    _, report = fit_lambdarank(planted(100, 20, 0), planted(50, 20, 1), ["signal", "noise_a", "noise_b"],
                               rounds=8, early_stopping=8, params={"min_data_in_leaf": 5}, refit=True)
    lines = out.getvalue().splitlines()
    first = f"{report['validation_curve'][0]:.4f}"
    assert lines[0].startswith(f"LambdaRank rounds (validation ndcg@10 {first}): 1/8")
    assert any(line.startswith("LambdaRank refit on train + validation: done") for line in lines)
