"""Baselines against brute-force formulas, plus a conformance suite every candidate source must pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.pipeline.components import build_source, names
from rankstack.retrieval.ease import EASE, EASEConfig, inverse_spd_
from rankstack.retrieval.itemknn import ItemKNN, ItemKNNConfig
from rankstack.retrieval.popular import MostPopular
from rankstack.testing.sources import check_candidate_source


def _random_dataset(n_users: int = 40, n_items: int = 30, density: float = 0.2, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True  # every user has at least one item; item 0 is the most popular
    users, items = np.nonzero(mask)
    df = pl.DataFrame({"user_id": users, "item_id": items})
    return Dataset.from_events(df, name="random")


def test_ease_matches_the_closed_form() -> None:
    ds = _random_dataset()
    model = EASE(EASEConfig(l2=5.0, device="cpu")).fit(ds)
    x = ds.interaction_matrix().toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(x.shape[1]))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights_.numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(model.score(np.array([0, 3])).numpy(), x[[0, 3]] @ expected, atol=1e-3)


def test_inplace_spd_inverse_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((150, 150))
    spd = (a @ a.T + 150 * np.eye(150)).astype(np.float32)
    expected = np.linalg.inv(spd.astype(np.float64))
    buffer = torch.from_numpy(spd.copy())
    got = inverse_spd_(buffer)
    assert got.data_ptr() == buffer.data_ptr()  # no second n² buffer
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(got.numpy(), got.numpy().T, atol=1e-9)


def test_inverse_rejects_a_matrix_that_is_not_positive_definite() -> None:
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        inverse_spd_(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))


def test_itemknn_matches_brute_force_cosine_with_shrinkage() -> None:
    ds = _random_dataset(seed=2)
    model = ItemKNN(ItemKNNConfig(neighbors=1000, shrink=3.0, chunk_size=7)).fit(ds)
    x = ds.interaction_matrix().toarray().astype(np.float64)
    norms = np.sqrt(x.sum(0))
    sim = (x.T @ x) / (np.outer(norms, norms) + 3.0)
    np.fill_diagonal(sim, 0.0)
    np.testing.assert_allclose(model.similarity_.toarray(), sim, atol=1e-5)
    np.testing.assert_allclose(model.score(np.array([1, 2])).numpy(), x[[1, 2]] @ sim, atol=1e-4)


def test_itemknn_keeps_only_the_top_neighbours_per_item() -> None:
    ds = _random_dataset(seed=3)
    full = ItemKNN(ItemKNNConfig(neighbors=1000)).fit(ds).similarity_.toarray()
    pruned = ItemKNN(ItemKNNConfig(neighbors=3)).fit(ds).similarity_.toarray()
    assert ((pruned > 0).sum(axis=0) <= 3).all()
    for j in range(full.shape[1]):
        kept = pruned[:, j] > 0
        if kept.any():
            assert pruned[kept, j].min() >= np.sort(full[:, j])[-3] - 1e-6


def test_popular_ranks_by_user_count_and_pads_short_lists() -> None:
    df = pl.DataFrame({"user_id": [1, 2, 3, 1, 2, 3], "item_id": ["a", "a", "a", "b", "b", "c"]})
    ds = Dataset.from_events(df, name="tiny")
    model = MostPopular().fit(ds)
    cands = model.retrieve(np.array([2]), k=3)  # user "3" saw a and c
    assert ds.item_map.to_external(cands.item_ids[0, :1]).to_list() == ["b"]
    assert cands.item_ids[0, 1:].tolist() == [PAD_ITEM, PAD_ITEM]
    unfiltered = model.retrieve(np.array([2]), k=3, exclude_seen=False)
    assert ds.item_map.to_external(unfiltered.item_ids[0]).to_list() == ["a", "b", "c"]


@pytest.mark.parametrize("name", sorted(names("source")))
def test_conformance(name: str, tmp_path: Path) -> None:
    """Every candidate source passes the library's suite: shapes, PAD, tie rule, no training items,
    determinism and a save/load round trip."""
    check_candidate_source(lambda: build_source(name), _random_dataset(seed=4), save_to=tmp_path / name)


def test_unfitted_source_says_so() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        MostPopular().retrieve(np.array([0]), k=1)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("bpr-mf", {}, "unknown model 'bpr-mf'"),
        ("ease", {"l2": -1}, "l2: Input should be greater than 0"),
        ("itemknn", {"neighbours": 5}, "unknown setting 'neighbours' \\(known: neighbors"),
        ("itemknn", {"neighbors": "many"}, "neighbors: Input should be a valid integer"),
    ],
)
def test_build_source_rejects_bad_configs(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_source(name, params)
