"""ALS through ``implicit``: planted structure, fold-in against the fit and implicit's own solve, serving from saved
factors (scores, tie rule, candidates re-scored from histories), the wall-clock budget and bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from planted import planted

from rankstack.candidates import PAD_ITEM
from rankstack.errors import ConfigError
from rankstack.evaluation.evaluator import Evaluator
from rankstack.index.exact import ExactIndex, ExactIndexConfig
from rankstack.pipeline.components import build_source, source_class
from rankstack.retrieval.als import ALS, ALSConfig
from rankstack.retrieval.als_train import make_solver
from rankstack.retrieval.indexed import IndexedRetriever
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source_files import load_source, save_source
from rankstack.testing.sources import check_candidate_source, check_candidates

FAST: dict[str, Any] = {"factors": 8, "regularization": 0.1, "alpha": 5.0, "iterations": 10, "num_threads": 1,
                        "device": "cpu"}


def _histories(train: sp.csr_matrix) -> list[np.ndarray]:
    return [train.indices[train.indptr[u]: train.indptr[u + 1]].astype(np.int64) for u in range(train.shape[0])]


def test_als_learns_planted_structure_and_beats_popularity() -> None:
    train, test = planted()
    model = ALS(ALSConfig(**FAST, track_loss=True)).fit(train)
    losses = [h["loss"] for h in model.history_]
    assert len(losses) == 10 and losses[-1] < 0.8 * losses[0]
    ev = Evaluator.from_datasets(train, test, ks=[10])
    ours, pop = ev.evaluate(model)["recall@10"], ev.evaluate(MostPopular().fit(train))["recall@10"]
    assert ours > pop + 0.2, (ours, pop)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_conformance_suite(solver: str, tmp_path: Path) -> None:
    train, _ = planted(n_users=40, n_items=30, seed=2)
    check_candidate_source(lambda: build_source("als", {**FAST, "solver": solver}), train, save_to=tmp_path / "als")


def test_seed_fixes_the_model_whatever_the_thread_count_and_another_seed_changes_it() -> None:
    train, _ = planted(n_users=40, n_items=30)
    a, b = (ALS(ALSConfig(**{**FAST, "num_threads": t})).fit(train) for t in (1, 2))
    c = ALS(ALSConfig(**FAST, seed=1)).fit(train)
    assert torch.equal(a.user_factors_, b.user_factors_) and torch.equal(a.item_factors_, b.item_factors_)
    assert not torch.equal(a.item_factors_, c.item_factors_)


def test_save_load_round_trip_gives_identical_scores(tmp_path: Path) -> None:
    train, _ = planted(n_users=50, n_items=40)
    model = ALS(ALSConfig(**FAST)).fit(train)
    loaded = load_source(save_source(model, tmp_path / "als", dataset=train), source_class)
    assert isinstance(loaded, ALS) and loaded.config == model.config and loaded.history_ == model.history_
    users = np.arange(train.n_users)
    assert torch.equal(loaded.score(users), model.score(users))
    hist = _histories(model._require_fitted())
    assert torch.equal(loaded.fold_in(hist), model.fold_in(hist))


def test_fold_in_reproduces_the_fitted_users_and_implicits_own_solve() -> None:
    train, _ = planted(n_users=60, n_items=40, seed=3)
    model = ALS(ALSConfig(**{**FAST, "iterations": 30, "solver": "cholesky"})).fit(train)
    x = model._require_fitted()
    folded = model.fold_in(_histories(x))
    # near convergence the fitted user factors are the user half-step against the final item factors
    gap = float((folded - model.user_factors_).norm() / model.user_factors_.norm())
    assert gap < 0.02, gap
    solver = make_solver(model.config)
    solver.user_factors = model.user_factors_.numpy().copy()
    solver.item_factors = model.item_factors_.numpy().copy()
    theirs = solver.recalculate_user(np.arange(x.shape[0]), x)  # implicit's exact (Cholesky) user solve
    torch.testing.assert_close(folded, torch.from_numpy(theirs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 5.0])
@pytest.mark.parametrize("length", [3, 16, 25])  # shorter than d (Woodbury), equal and longer (d × d solve)
def test_every_fold_in_path_solves_the_normal_equations(alpha: float, length: int) -> None:
    rng = np.random.default_rng(length)
    model = ALS(ALSConfig(factors=16, alpha=alpha, regularization=0.3, device="cpu"))
    model.train_ = sp.csr_matrix((2, 40), dtype=np.float32)
    model.set_factors(torch.zeros(2, 16), torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32)))
    hist = [rng.choice(40, length, replace=False), rng.choice(40, max(length - 2, 1), replace=False)]
    y = model.item_factors_.double()
    for row, h in enumerate(hist):
        yh = y[torch.as_tensor(h)]
        a = y.T @ y + 0.3 * torch.eye(16, dtype=torch.float64) + (alpha - 1) * yh.T @ yh
        expected = torch.linalg.solve(a, alpha * yh.sum(0))
        torch.testing.assert_close(model.fold_in(hist)[row].double(), expected, atol=1e-5, rtol=1e-4)


def test_fold_in_ignores_repeats_and_maps_an_empty_history_to_zero() -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**FAST)).fit(train)
    once, twice, empty = model.fold_in([np.array([3, 5]), np.array([5, 3, 3]), np.zeros(0, np.int64)])
    torch.testing.assert_close(once, twice)
    assert torch.count_nonzero(empty) == 0 and torch.count_nonzero(once) > 0


def test_fold_in_blocks_give_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = planted(n_users=40, n_items=30, seed=5)
    model = ALS(ALSConfig(**FAST)).fit(train)
    hist = _histories(model._require_fitted())
    whole = model.fold_in(hist)
    monkeypatch.setattr("rankstack.retrieval.als.FOLD_IN_BLOCK", 1)  # one history per block
    torch.testing.assert_close(model.fold_in(hist), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("history", [np.array([0, 20]), np.array([-1, 2])])
def test_fold_in_rejects_items_outside_the_catalog(history: np.ndarray) -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**FAST)).fit(train)
    with pytest.raises(ValueError, match=r"histories\[1\]: item ids must lie in \[0, 20\)"):
        model.fold_in([np.array([1]), history])


def test_score_candidates_gathers_the_folded_scores_and_pads_with_minus_inf() -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**FAST)).fit(train)
    hist = [np.array([1, 2, 3]), np.array([7])]
    cands = np.array([[4, 0, PAD_ITEM], [19, 7, 2]])
    full = model.score_histories(hist)
    got = model.score_candidates(hist, cands)
    assert torch.isneginf(got[0, 2])
    torch.testing.assert_close(got[0, :2], full[0, [4, 0]])
    torch.testing.assert_close(got[1], full[1, [19, 7, 2]])
    with pytest.raises(ValueError, match=r"candidates must be \[2, C\]"):
        model.score_candidates(hist, cands[:1])
    with pytest.raises(ValueError, match=r"candidate item ids must lie in \[0, 20\)"):
        model.score_candidates(hist, np.array([[20], [0]]))


def test_equal_scores_retrieve_in_ascending_item_id() -> None:
    model = ALS(ALSConfig(factors=2, device="cpu"))
    model.train_ = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float32))
    items = torch.tensor([[1.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 0.0]])
    model.set_factors(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), items)
    cands = model.retrieve(np.array([0, 1]), k=4)
    check_candidates(cands, 2, 4, 6, "als")
    assert cands.item_ids.tolist() == [[2, 4, 1, 3], [0, 1, 2, 3]]  # user 1 scores every item 0


def test_an_index_over_the_item_factors_retrieves_the_same() -> None:
    train, _ = planted(n_users=40, n_items=30)
    model = ALS(ALSConfig(**FAST)).fit(train)
    users = np.arange(train.n_users)
    indexed = IndexedRetriever(model, ExactIndex(ExactIndexConfig())).retrieve(users, 10)
    np.testing.assert_array_equal(indexed.item_ids, model.retrieve(users, 10).item_ids)


def test_unknown_users_are_an_error_that_points_at_fold_in() -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**FAST)).fit(train)
    n = train.n_users
    with pytest.raises(ValueError, match=rf"user ids must lie in \[0, {n}\).*fold_in"):
        model.score(np.array([0, n]))


def test_a_budget_stop_is_recorded_and_saved(tmp_path: Path) -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**{**FAST, "iterations": 4, "time_budget_s": 1e-9})).fit(train)
    stop = model.budget_stop_
    assert stop is not None and (stop.epochs_done, stop.epochs, stop.partial_epoch) == (1, 4, None)
    assert len(model.history_) == 1
    save_source(model, tmp_path / "als", dataset=train)
    assert load_source(tmp_path / "als", source_class).budget_stop_ == stop
    assert ALS(ALSConfig(**FAST)).fit(train).budget_stop_ is None


def test_an_empty_training_set_is_a_clear_error() -> None:
    train, _ = planted(n_users=10, n_items=8)
    empty = train.with_events(train.events.head(0))
    with pytest.raises(ValueError, match="no positive interactions to fit ALS on"):
        ALS(ALSConfig(**FAST)).fit(empty)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"factors": 0}, "factors: Input should be greater than or equal to 1"),
        ({"regularization": 0}, "regularization: Input should be greater than 0"),
        ({"alpha": -1}, "alpha: Input should be greater than 0"),
        ({"iterations": 0}, "iterations: Input should be greater than or equal to 1"),
        ({"solver": "lu"}, "solver: Input should be 'cg' or 'cholesky'"),
        ({"time_budget_s": 0}, "time_budget_s: Input should be greater than 0"),
        ({"num_threads": -2}, "num_threads: Input should be greater than or equal to 0"),
        ({"epochs": 5}, "unknown setting 'epochs' \\(known: factors"),
    ],
)
def test_bad_settings_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_source("als", params)


def test_the_sequential_ranker_stage_rescores_with_folded_in_histories() -> None:
    from rankstack.pipeline.config import RankerStage
    from rankstack.ranking.ranker import RankBatch
    from rankstack.ranking.sequential import NEXT_ITEM, SequentialRanker

    assert RankerStage(source="als").source == "als"  # it has score_candidates, so the config accepts it
    train, _ = planted(n_users=30, n_items=20)
    model = ALS(ALSConfig(**FAST)).fit(train)
    hist = [np.array([1, 2]), np.zeros(0, np.int64)]
    cands = np.array([[5, PAD_ITEM], [3, 4]])
    got = SequentialRanker(model).score(RankBatch(np.array([0, -1]), cands, hist))[NEXT_ITEM]
    assert np.isnan(got[0, 1]) and np.isnan(got[1]).all()  # pads and rows without a history
    assert got[0, 0] == pytest.approx(float(model.score_histories(hist[:1])[0, 5]), rel=1e-6)



def test_the_fit_summary_counts_sweeps_and_survives_save_and_load(tmp_path: Path) -> None:
    train, _ = planted(n_users=40, n_items=30)
    model = ALS(ALSConfig(**{**FAST, "iterations": 3})).fit(train)
    summary = model.fit_summary()
    assert summary is not None and summary.headline() == {"epochs_run": 3, "best_epoch": 3, "stopped_by": "epochs"}
    loaded = load_source(save_source(model, tmp_path / "als", dataset=train), source_class)
    assert loaded.fit_summary() == summary
