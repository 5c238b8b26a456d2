"""Two-tower: feature encoding, causal histories, logQ estimate, learning, cold-start items from features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from planted import planted

from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator
from rankstack.retrieval.feature_tensors import FeatureEncoder
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.two_tower import TwoTower, TwoTowerConfig
from rankstack.retrieval.two_tower_net import StreamingFrequency
from rankstack.retrieval.two_tower_train import causal_history, flatten_sequences

FAST = {"epochs": 15, "batch_size": 128, "lr": 5e-3, "embedding_dim": 16, "hidden_dim": 32, "history_len": 8,
        "temperature": 0.1, "device": "cpu"}


def _with_group_features(ds: Dataset, groups: int = 4) -> Dataset:
    """Add a categorical 'group', a numeric and a multi-valued feature revealing each item's group."""
    ids = ds.item_map.to_external(np.arange(ds.n_items)).to_list()
    table = pl.DataFrame({"item_id": np.arange(ds.n_items), "group": [f"g{i % groups}" for i in ids],
                          "price": [float(i % groups) for i in ids], "tags": [[f"t{i % groups}", "all"] for i in ids],
                          "title": [f"item {i}" for i in ids]})
    return Dataset(name=ds.name, events=ds.events, user_map=ds.user_map, item_map=ds.item_map, item_features=table)


def test_feature_encoder_detects_column_kinds_and_round_trips() -> None:
    table = pl.DataFrame({"item_id": [0, 2], "cat": ["a", None], "x": [1.0, 3.0], "tags": [["p", "q"], []]})
    enc = FeatureEncoder("item_id").fit(table)
    titles = pl.DataFrame({"item_id": range(200), "title": [f"movie {i}" for i in range(200)]})
    assert not FeatureEncoder("item_id").fit(titles).categorical_  # free text is not a category
    assert list(enc.categorical_) == ["cat"] and list(enc.numeric_) == ["x"] and list(enc.multi_) == ["tags"]
    out = enc.encode(table, 3)
    assert out["cat"][:, 0].tolist() == [1, 0, 0]
    np.testing.assert_allclose(out["num"].numpy()[:, 1], [0, 1, 0])  # row 1 has no features: missing flag
    assert out["multi.tags"].tolist() == [[1, 2], [0, 0], [0, 0]]
    again = FeatureEncoder.from_description(enc.describe())
    assert all(torch.equal(again.encode(table, 3)[k], v) for k, v in out.items())


def test_causal_history_never_includes_the_target_or_other_users() -> None:
    items, users, starts = flatten_sequences([np.array([5, 6, 7]), np.array([], np.int64), np.array([8, 9])])
    hist = causal_history(torch.from_numpy(items), torch.arange(len(items)), torch.from_numpy(starts), 2)
    assert hist.tolist() == [[-1, -1], [-1, 5], [5, 6], [-1, -1], [-1, 8]]
    assert users.tolist() == [0, 0, 0, 2, 2]


def test_streaming_frequency_tracks_sampling_rates() -> None:
    freq = StreamingFrequency(3, batch_size=1, alpha=0.1, device=torch.device("cpu"))
    for step in range(400):
        freq.update(torch.tensor([0] if step % 4 else [0, 1]))
    q = freq.log_q(torch.tensor([0, 1])).exp()
    assert q[0].item() == pytest.approx(1.0, rel=0.05) and q[1].item() == pytest.approx(0.25, rel=0.1)


def test_two_tower_learns_planted_structure_and_beats_popularity() -> None:
    train, test = planted()
    model = TwoTower(TwoTowerConfig(**FAST, uniform_negatives=16)).fit(train)
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
    ev = Evaluator.from_datasets(train, test, ks=[10])
    ours, pop = ev.evaluate(model)["recall@10"], ev.evaluate(MostPopular().fit(train))["recall@10"]
    assert ours > pop + 0.1, (ours, pop)
    norms = model.item_vectors().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_cold_items_are_embedded_from_features() -> None:
    train, test = planted(seed=2)
    train, test = _with_group_features(train), _with_group_features(test)
    cold = np.arange(train.n_items) % 10 == 0  # 10% of items never appear in training
    train = train.with_events(train.events.filter(~pl.Series(cold[train.events["item_id"].to_numpy()])))
    test = test.with_events(test.events.filter(pl.Series(cold[test.events["item_id"].to_numpy()])))
    model = TwoTower(TwoTowerConfig(**{**FAST, "epochs": 25}, id_dropout=0.5)).fit(train)
    scores = model.score(np.arange(train.n_users))[:, torch.from_numpy(cold)]
    truth = test.interaction_matrix()[:, cold].toarray() > 0
    users = truth.any(1)
    top = torch.topk(scores[torch.from_numpy(users)], 2, dim=1).indices.numpy()
    hit_rate = np.take_along_axis(truth[users], top, 1).any(1).mean()
    chance = 1 - (1 - truth[users].mean()) ** 2  # a random pair of cold items
    assert hit_rate > chance + 0.15, (hit_rate, chance)


def test_validation_early_stopping_keeps_a_curve() -> None:
    train, _ = planted(seed=3)
    model = TwoTower(TwoTowerConfig(**{**FAST, "epochs": 3}, validation_ratio=0.2, patience=2)).fit(train)
    assert any("val_recall@20" in h for h in model.history_)
