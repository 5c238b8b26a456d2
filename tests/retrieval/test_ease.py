"""EASE: the λ path against the closed form, row-major weights (no per-batch copy) scoring as before, stage lines."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator
from rankstack.retrieval import ease as ease_module
from rankstack.retrieval.ease import EASE, EASEConfig, gram_matrix

L2S = (0.5, 5.0, 80.0)


def _dataset(n_users: int = 50, n_items: int = 25, density: float = 0.25, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True
    users, items = np.nonzero(mask)
    return Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="random")


def _closed_form(ds: Dataset, l2: float) -> np.ndarray:
    """B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹, in float64."""
    x = ds.interaction_matrix().toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p / np.diag(p)[None, :]


def test_gram_matrix_is_row_major_xtx_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset()
    monkeypatch.setattr("rankstack.retrieval.ease_memory.GRAM_BLOCK_BYTES", 4 * 25 * 3)  # 3 rows per block
    x = ds.interaction_matrix()
    gram = gram_matrix(x)
    assert gram.flags["C_CONTIGUOUS"] and gram.dtype == np.float32
    np.testing.assert_array_equal(gram, (x.T @ x).toarray())


@pytest.mark.parametrize("method", ["cholesky", "eigh"])
def test_lambda_path_equals_the_direct_solve_for_each_lambda(method: str) -> None:
    ds = _dataset()
    seen = []
    for model in EASE(EASEConfig(device="cpu")).fit_path(ds, L2S, method=method):  # type: ignore[arg-type]
        seen.append(model.config.l2)
        direct = EASE(EASEConfig(l2=model.config.l2, device="cpu")).fit(ds).weights_.numpy()
        np.testing.assert_allclose(model.weights_.numpy(), direct, atol=1e-4)
        np.testing.assert_allclose(model.weights_.numpy(), _closed_form(ds, model.config.l2), atol=1e-4)
    assert seen == list(L2S)


@pytest.mark.parametrize("l2s", [[], [100.0, 0.0], [-1.0]])
def test_lambda_path_rejects_bad_grids(l2s: list[float]) -> None:
    with pytest.raises(ValueError, match="l2s must be a non-empty list of values > 0"):
        next(EASE(EASEConfig(device="cpu")).fit_path(_dataset(), l2s))


class ColumnMajorEASE:
    """The scoring EASE had before: SciPy CSR × a column-major B (which SciPy copied for every batch)."""

    def __init__(self, model: EASE) -> None:
        self.train, self.weights = model.train_, np.asfortranarray(model.weights_.numpy())

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """X_u B."""
        return torch.from_numpy(self.train[user_ids] @ self.weights)


def test_row_major_scoring_gives_the_same_scores_and_metrics_as_before() -> None:
    fit, held = _dataset(n_users=80, n_items=40, seed=1), _dataset(n_users=80, n_items=40, seed=2)
    held = fit.with_events(held.events)  # same id maps (both have every user and item)
    model = EASE(EASEConfig(l2=3.0, device="cpu")).fit(fit)
    assert model.weights_.is_contiguous()
    before = ColumnMajorEASE(model)
    users = np.arange(fit.n_users)
    assert torch.equal(model.score(users), before.score(users))
    evaluator = Evaluator.from_datasets(fit, held, ks=(5, 10), batch_size=16, device="cpu")
    assert evaluator.evaluate(model) == evaluator.evaluate(before)


def test_a_column_major_loaded_b_is_made_row_major_once() -> None:
    model = EASE(EASEConfig(l2=3.0, device="cpu")).fit(_dataset())
    expected = model.score(np.arange(5))
    model.weights_ = model.weights_.T.contiguous().T  # as if loaded column-major
    assert torch.equal(model.score(np.arange(5)), expected)
    assert model.weights_.is_contiguous()


def test_large_fits_say_each_stage_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ease_module, "STAGE_LINES_MIN_ITEMS", 1)
    monkeypatch.delenv("RANKSTACK_QUIET", raising=False)
    list(EASE(EASEConfig(device="cpu")).fit_path(_dataset(), [1.0, 2.0]))
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert any("Gram matrix XᵀX" in line for line in lines)
    assert any("λ=2 (2/2)" in line for line in lines)
