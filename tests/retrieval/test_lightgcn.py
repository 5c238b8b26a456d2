"""LightGCN: propagation against a dense reference, negative sampling, learning on planted structure."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from planted import planted

from rankstack.evaluation.evaluator import Evaluator
from rankstack.retrieval.lightgcn import (
    LightGCN,
    LightGCNConfig,
    holdout,
    normalized_adjacency,
    propagate,
    sample_negatives,
    to_torch_csr,
)
from rankstack.retrieval.popular import MostPopular

FAST = {"epochs": 30, "batch_size": 256, "lr": 0.02, "embedding_dim": 16, "device": "cpu", "eval_every": 5}


def test_propagation_matches_dense_reference_and_its_gradient() -> None:
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((7, 5)) < 0.4).astype(np.float32))
    x[6] = 0  # an isolated user keeps a zero row in Â
    x.eliminate_zeros()
    a = np.block([[np.zeros((7, 7)), x.toarray()], [x.toarray().T, np.zeros((5, 5))]])
    deg = a.sum(1)
    d = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    a_hat = d[:, None] * a * d[None, :]
    np.testing.assert_allclose(normalized_adjacency(x).toarray(), a_hat, atol=1e-6)
    e0 = torch.randn(12, 3, dtype=torch.float32, requires_grad=True)
    got = propagate(to_torch_csr(normalized_adjacency(x), torch.device("cpu")), e0, layers=3)
    ah = torch.from_numpy(a_hat).float()
    e0d = e0.detach().clone().requires_grad_(True)
    expected = (e0d + ah @ e0d + ah @ ah @ e0d + ah @ ah @ ah @ e0d) / 4
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    w = torch.randn(12, 3)
    (got * w).sum().backward()
    (expected * w).sum().backward()
    assert e0.grad is not None and e0d.grad is not None
    torch.testing.assert_close(e0.grad, e0d.grad, atol=1e-5, rtol=1e-5)


def test_negative_sampling_avoids_positives() -> None:
    n_items = 10
    users = torch.arange(200) % 20
    pos = torch.stack([users, (users * 3) % n_items], 1).unique(dim=0)
    keys = torch.sort(pos[:, 0] * n_items + pos[:, 1]).values
    gen = torch.Generator().manual_seed(0)
    neg = sample_negatives(users, keys, n_items, gen, rounds=5)
    clash = torch.isin(users * n_items + neg, keys)
    assert clash.float().mean() < 0.01 and neg.min() >= 0 and neg.max() < n_items


def test_holdout_keeps_small_users_whole() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=np.float32))
    train, val = holdout(x, 0.5, seed=0)
    assert train[0].nnz == 2 and val[0].nnz == 0 and (train + val - x).nnz == 0


def test_lightgcn_learns_planted_structure_and_beats_popularity() -> None:
    train, test = planted()
    model = LightGCN(LightGCNConfig(**FAST, validation_ratio=0.0)).fit(train)
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < 0.7 * losses[0]
    ev = Evaluator.from_datasets(train, test, ks=[10])
    ours = ev.evaluate(model)["recall@10"]
    pop = ev.evaluate(MostPopular().fit(train))["recall@10"]
    assert ours > pop + 0.1, (ours, pop)


def test_early_stopping_records_validation_curve() -> None:
    train, _ = planted(seed=1)
    cfg = LightGCNConfig(**{**FAST, "epochs": 15}, validation_ratio=0.2, patience=2)
    model = LightGCN(cfg).fit(train)
    curve = [h for h in model.history_ if "val_recall@20" in h]
    assert curve and all(h["wall_s"] >= 0 for h in curve)
    assert model.best_epoch_ in [int(h["epoch"]) for h in curve]
    assert model.user_emb_.shape == (train.n_users, 16)
