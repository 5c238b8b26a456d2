"""The sources' fast ``retrieve`` paths agree with the dense top-k over the whole catalog; CPU and GPU presets of the
trained sources' settings; the closed-form fit summary."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.pipeline.components import settings
from rankstack.retrieval.itemknn import ItemKNN, ItemKNNConfig
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource


def _dataset(n_users: int, n_items: int, density: float, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True
    users, items = np.nonzero(mask)
    return Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="random")


def test_itemknn_retrieve_keeps_the_dense_ranking_of_positive_scores() -> None:
    ds = _dataset(60, 50, 0.15, 3)
    model = ItemKNN(ItemKNNConfig(neighbors=5)).fit(ds)
    users = np.arange(ds.n_users)
    fast = model.retrieve(users, 20)
    dense = CandidateSource.retrieve(model, users, 20)
    positive = dense.scores > 0
    # identical where the dense path still ranks items with a positive score; the fast path pads the rest
    np.testing.assert_allclose(np.where(positive, fast.scores, 0), np.where(positive, dense.scores, 0), rtol=1e-6)
    assert (fast.item_ids[~positive] == PAD_ITEM).all()
    seen = model.train_.toarray() > 0  # type: ignore[union-attr]
    got = fast.item_ids >= 0
    assert not seen[np.repeat(users, 20)[got.ravel()], fast.item_ids[got]].any()


def test_popular_retrieve_matches_the_dense_path() -> None:
    ds = _dataset(80, 30, 0.3, 5)
    model = MostPopular().fit(ds)
    users = np.arange(ds.n_users)
    for exclude in (True, False):
        fast = model.retrieve(users, 12, exclude_seen=exclude)
        dense = CandidateSource.retrieve(model, users, 12, exclude_seen=exclude)
        np.testing.assert_array_equal(fast.scores, dense.scores.astype(np.float32))  # same counts, rank by rank
        assert ((fast.item_ids == PAD_ITEM) == (dense.item_ids == PAD_ITEM)).all()


def test_popular_retrieve_pads_users_who_saw_almost_everything() -> None:
    ds = Dataset.from_events(pl.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [0, 1, 2, 2]}), name="tiny")
    model = MostPopular().fit(ds)
    out = model.retrieve(np.array([0, 1]), 3)
    assert out.item_ids[0].tolist() == [PAD_ITEM] * 3
    assert out.item_ids[1, :2].tolist() == [0, 1] and out.item_ids[1, 2] == PAD_ITEM


@pytest.mark.parametrize(("name", "cpu", "gpu"), [
    ("lightgcn", {"epochs": 300, "batch_size": 8192, "lr": 5e-3, "patience": 4},
     {"epochs": 1000, "batch_size": 2048, "lr": 1e-3, "patience": 10}),
    ("sasrec", {"epochs": 50, "max_len": 50, "patience": 5, "lr": 3e-3},
     {"epochs": 200, "max_len": 200, "patience": 10, "lr": 1e-3}),
    ("two-tower", {"epochs": 10, "amp": False}, {"epochs": 20, "amp": True}),
])
def test_the_cpu_preset_is_the_default_and_the_gpu_preset_is_the_paper_schedule(
        name: str, cpu: dict[str, object], gpu: dict[str, object]) -> None:
    default, on_gpu = settings("source", name), settings("source", name, {"preset": "gpu"})
    assert {k: getattr(default, k) for k in cpu} == cpu and default.preset == "cpu"
    assert {k: getattr(on_gpu, k) for k in gpu} == gpu
    first = next(iter(gpu))
    explicit = settings("source", name, {"preset": "gpu", first: 7})  # a setting given wins over the preset
    assert getattr(explicit, first) == 7
    # the saved config (every field, the preset's values included) reads back to the same settings
    assert settings("source", name, on_gpu.model_dump()) == on_gpu


def test_an_unknown_preset_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="preset: Input should be 'cpu' or 'gpu'"):
        settings("source", "lightgcn", {"preset": "tpu"})


def test_closed_form_sources_report_no_epochs_once_fitted() -> None:
    model = ItemKNN(ItemKNNConfig(neighbors=5))
    assert model.fit_summary() is None  # not fitted yet
    summary = model.fit(_dataset(20, 10, 0.3, 0)).fit_summary()
    assert summary is not None and summary.headline() == {"epochs_run": 0, "best_epoch": None,
                                                          "stopped_by": "converged"}
