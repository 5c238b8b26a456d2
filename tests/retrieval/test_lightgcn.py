"""LightGCN: propagation against a dense reference, negative sampling, learning on planted structure, and the
optional sampled-softmax loss (against a per-row reference, config table, persistence, index similarity)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from planted import planted
from pydantic import ValidationError

from rankstack.evaluation.evaluator import Evaluator
from rankstack.index.exact import ExactIndex, ExactIndexConfig
from rankstack.pipeline.components import build_source, source_class
from rankstack.retrieval.lightgcn import LightGCN, LightGCNConfig
from rankstack.retrieval.lightgcn_train import (
    LightGCNLoss,
    accidental_hits,
    holdout,
    normalized_adjacency,
    propagate,
    sample_negatives,
    to_torch_csr,
)
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source_files import load_source, save_source

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


@pytest.mark.parametrize("loss", ["bpr", "softmax"])
def test_lightgcn_learns_planted_structure_and_beats_popularity(loss: str) -> None:
    train, test = planted()
    settings = {**FAST, "validation_ratio": 0.0} if loss == "bpr" else SOFTMAX
    model = LightGCN(LightGCNConfig(**settings)).fit(train)
    assert model.config.loss == loss
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


def test_a_budget_stop_is_recorded_and_saved(tmp_path: Path) -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = LightGCN(LightGCNConfig(**{**FAST, "epochs": 4, "batch_size": 8, "time_budget_s": 1e-6},
                                    validation_ratio=0.0)).fit(train)
    stop = model.budget_stop_  # checked before every batch but an epoch's first: the first epoch is cut
    assert stop is not None and (stop.epochs_done, stop.epochs, stop.partial_epoch) == (0, 4, "kept")
    assert model.best_epoch_ == 0 and model.history_ == []
    save_source(model, tmp_path / "lightgcn", dataset=train)
    loaded = load_source(tmp_path / "lightgcn", source_class)
    assert loaded.budget_stop_ == stop and loaded.fit_summary() == model.fit_summary()
    assert LightGCN(LightGCNConfig(**{**FAST, "epochs": 2}, validation_ratio=0.0)).fit(train).budget_stop_ is None


SOFTMAX = {**FAST, "loss": "softmax", "validation_ratio": 0.0}


def test_default_is_bpr_and_never_calls_the_softmax_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LightGCNConfig().loss == "bpr"

    def fail(*args: Any) -> torch.Tensor:
        raise AssertionError("softmax loss used by default")

    monkeypatch.setattr(LightGCNLoss, "softmax", fail)
    train, _ = planted(n_users=30, n_items=20)
    LightGCN(LightGCNConfig(**{**FAST, "epochs": 1}, validation_ratio=0.0)).fit(train)


@pytest.mark.parametrize("cosine", [True, False])
def test_softmax_loss_matches_a_per_row_reference(cosine: bool) -> None:
    n_users, n_items, tau = 4, 6, 0.5
    x = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 1, 0]],
                               dtype=np.float32))
    adj = to_torch_csr(normalized_adjacency(x), torch.device("cpu"))
    ego = torch.randn(n_users + n_items, 3, generator=torch.Generator().manual_seed(0))
    coo = x.tocoo()
    freq = torch.bincount(torch.from_numpy(coo.col).long(), minlength=n_items).float() / x.nnz
    u, i, j = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 3]), torch.tensor([4, 1, 5])
    cfg = LightGCNConfig(loss="softmax", temperature=tau, cosine=cosine, l2=0.0, layers=2)
    got = LightGCNLoss(cfg, adj, to_torch_csr(x, torch.device("cpu")), freq, n_users).softmax(ego, u, i, j)
    emb = propagate(adj, ego, 2).numpy().astype(np.float64)
    if cosine:
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cols, positives = [*i.tolist(), *j.tolist()], set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))

    def logit(user: int, item: int) -> float:
        return float(emb[user] @ emb[n_users + item]) / tau - math.log(len(u) * float(freq[item]) + len(j) / n_items)

    total = 0.0
    for b, user in enumerate(u.tolist()):
        # every column but the user's other training positives (accidental hits); the target column b stays
        terms = [logit(user, item) for c, item in enumerate(cols) if c == b or (user, item) not in positives]
        total += -(logit(user, int(i[b])) - np.log(np.exp(terms).sum()))
    assert abs(float(got) - total / len(u)) < 1e-4


def test_accidental_hits_match_brute_force_with_repeated_columns() -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((9, 7)) < 0.4).astype(np.float32))
    x[4] = 0  # a user with no positives
    x.eliminate_zeros()
    users = torch.tensor([4, 0, 0, 8, 3, 1])
    cols = torch.from_numpy(rng.integers(0, 7, 20)).long()
    got = accidental_hits(users, cols, to_torch_csr(x, torch.device("cpu")))
    expected = x.toarray()[users.numpy()][:, cols.numpy()] > 0
    np.testing.assert_array_equal(got.numpy(), expected)
    assert expected.any() and not expected.all()


def test_cosine_softmax_exports_unit_vectors_that_the_index_ranks_like_score() -> None:
    train, _ = planted(n_users=40, n_items=30)
    model = LightGCN(LightGCNConfig(**{**SOFTMAX, "epochs": 3})).fit(train)
    torch.testing.assert_close(model.item_vectors().norm(dim=1), torch.ones(30))
    users = np.arange(train.n_users)
    _, ids = ExactIndex(ExactIndexConfig(device="cpu")).build(model.item_vectors()).search(
        model.user_vectors(users), 5)
    np.testing.assert_array_equal(ids, model.retrieve(users, 5, exclude_seen=False).item_ids)
    dot = LightGCN(LightGCNConfig(**{**SOFTMAX, "epochs": 3, "cosine": False})).fit(train)
    assert not torch.allclose(dot.item_vectors().norm(dim=1), torch.ones(30))


def test_softmax_round_trip_keeps_loss_cosine_and_scores(tmp_path: Path) -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = LightGCN(LightGCNConfig(**{**SOFTMAX, "epochs": 2, "cosine": False, "negatives": 8})).fit(train)
    loaded = load_source(save_source(model, tmp_path / "m", dataset=train), source_class)
    assert isinstance(loaded, LightGCN) and loaded.config == model.config
    assert (loaded.config.loss, loaded.config.cosine, loaded.config.negatives) == ("softmax", False, 8)
    users = np.arange(train.n_users)
    torch.testing.assert_close(loaded.score(users), model.score(users), rtol=0, atol=0)


@pytest.mark.parametrize("field, value", [
    ("loss", "sampled"), ("loss", None), ("temperature", 0.0), ("temperature", -0.1), ("negatives", -1),
    ("negatives", 1.5), ("cosine", "maybe"), ("tau", 0.1),
])
def test_config_rejects_bad_softmax_settings(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        LightGCNConfig(**{field: value})


def test_command_line_settings_parse_as_the_benchmark_reads_them() -> None:
    # benchmarks/gowalla_retrieval.py turns each ``--set key=value`` into {key: yaml.safe_load(value)}
    sets = ["loss=softmax", "temperature=0.1", "negatives=0", "cosine=false"]
    model = build_source("lightgcn", {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in sets})
    cfg = model.config
    assert isinstance(cfg, LightGCNConfig)
    assert (cfg.loss, cfg.temperature, cfg.negatives, cfg.cosine) == ("softmax", 0.1, 0, False)
