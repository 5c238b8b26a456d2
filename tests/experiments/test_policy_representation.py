"""The learning stage's features from a fitted network: the joint projection against a direct numpy computation,
padding, and the vectors read from a tiny fitted SASRec (its item table and each user's state after the training
history)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.experiments.policy_features import fit_policy_features, svd_features
from rankstack.experiments.policy_representation import (
    item_projection,
    project_vectors,
    representation_features,
    source_vectors,
)
from rankstack.pipeline.config import LearningSettings
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.sequential.sasrec import SASRec, SASRecConfig

TINY_SASREC = {"epochs": 2, "hidden_dim": 16, "max_len": 10, "blocks": 1, "validation": False, "batch_size": 64,
               "device": "cpu", "seed": 0}


def tiny_events() -> Dataset:
    """40 users × 8 timed events over 24 items (user u mostly in group u % 3)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        items = [*rng.choice([i for i in range(24) if i % 3 == u % 3], size=6, replace=False).tolist(), u % 24, 7]
        rows += [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t) for t, i in enumerate(items)]
    return Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
                               name="tiny")


@pytest.fixture(scope="module")
def sasrec_fit() -> tuple[Dataset, SASRec]:
    """A tiny SASRec fitted in one thread."""
    data = tiny_events()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return data, SASRec(SASRecConfig.model_validate(TINY_SASREC)).fit(data)
    finally:
        torch.set_num_threads(threads)


def expected_projection(users: np.ndarray, items: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The documented recipe written out: top right singular vectors, signs, unit rows, × 256 rounded."""
    _, _, vt = np.linalg.svd(items, full_matrices=False)
    p = vt[:dim].T
    coords = items @ p
    for c in range(dim):
        if coords[np.abs(coords[:, c]).argmax(), c] < 0:
            p[:, c] = -p[:, c]
    x, y = users @ p, items @ p
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return np.rint(x * 256).astype(np.int16), np.rint(y * 256).astype(np.int16)


def test_projection_matches_a_direct_numpy_computation() -> None:
    rng = np.random.default_rng(3)
    items, users = rng.normal(size=(30, 10)), rng.normal(size=(12, 10))
    x, y = project_vectors(users, items, 4)
    ex, ey = expected_projection(users, items, 4)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    p = item_projection(items, 4)
    np.testing.assert_allclose(p.T @ p, np.eye(4), atol=1e-12)  # orthonormal columns
    # the kept subspace is the best rank-4 one: the items' energy in it is the top 4 squared singular values
    s = np.linalg.svd(items, compute_uv=False)
    assert np.linalg.norm(items @ p) ** 2 == pytest.approx(float((s[:4] ** 2).sum()))


def test_projection_is_sign_stable_and_pads_short_vectors() -> None:
    rng = np.random.default_rng(4)
    items, users = rng.normal(size=(20, 3)), rng.normal(size=(5, 3))
    x, y = project_vectors(users, items, 6)
    assert x.shape == (5, 6) and y.shape == (20, 6)
    assert not x[:, 3:].any() and not y[:, 3:].any()
    assert (np.abs(np.linalg.norm(y / 256, axis=1) - 1) < 0.01).all()
    flipped = project_vectors(users, items * np.array([-1.0, 1.0, 1.0]), 6)  # a reflected basis: same features
    np.testing.assert_array_equal(flipped[1], y)
    with pytest.raises(ValueError, match="user vectors have 2 dimensions, item vectors 3"):
        project_vectors(users[:, :2], items, 2)


def test_vectors_come_from_the_fitted_sasrec(sasrec_fit: tuple[Dataset, SASRec]) -> None:
    data, model = sasrec_fit
    users, items = source_vectors(model, data.n_users, batch=7)  # batched over users: same as one pass
    np.testing.assert_allclose(items, model.net_.item_table().detach().numpy(), rtol=0, atol=0)
    histories = data.sequences()
    states = model.user_states([histories[u] for u in range(data.n_users)]).numpy()
    np.testing.assert_allclose(users, states, atol=1e-6)  # the state after each user's training history
    features = representation_features(model, data.n_users, 4)
    ex, ey = expected_projection(users, items, 4)
    np.testing.assert_array_equal(features.items, ey)
    assert np.abs(features.users.astype(int) - ex).max() <= 1  # float32 state batching: at most one rounding step


def test_fit_policy_features_picks_the_representation(sasrec_fit: tuple[Dataset, SASRec]) -> None:
    data, model = sasrec_fit
    svd = fit_policy_features(LearningSettings(dim=4), data)
    assert svd.digest() == svd_features(LearningSettings(dim=4), data).digest()  # the default: the SVD, unchanged
    learned = fit_policy_features(LearningSettings(dim=4, representation="sasrec"), data, model)
    assert learned.digest() != svd.digest() and learned.items.shape == svd.items.shape
    with pytest.raises(ValueError, match="needs that fitted source"):
        fit_policy_features(LearningSettings(dim=4, representation="sasrec"), data)
    with pytest.raises(ValueError, match="source 'itemknn' has no user/item vectors"):
        source_vectors(ItemKNN().fit(data), data.n_users)
