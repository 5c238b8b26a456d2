"""Two-tower: feature encoding, causal and set histories, logQ estimate and its mixed-negative correction, user-tower
regularisation, learning, cold-start items from features."""

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
from rankstack.retrieval.two_tower_train import (
    batch_logits,
    batch_loss,
    causal_history,
    flatten_sequences,
    resolve_history_order,
    set_history,
    shuffle_within_users,
)
from rankstack.testing.resume import check_resume

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


def test_set_history_is_the_users_other_items_only() -> None:
    seqs = [np.array([5, 6, 7]), np.array([], np.int64), np.array([8, 9]), np.array([1, 2, 3, 4, 0])]
    items, users, starts = flatten_sequences(seqs)
    lengths = np.searchsorted(users, users, side="right") - starts
    flat, pos = torch.from_numpy(items), torch.arange(len(items))
    full = set_history(flat, pos, torch.from_numpy(starts), torch.from_numpy(lengths), 6)
    short = set_history(flat, pos, torch.from_numpy(starts), torch.from_numpy(lengths), 2)
    for p in range(len(items)):
        own = set(items[users == users[p]].tolist())
        assert set(full[p].tolist()) - {-1} == own - {items[p]}  # room for all: every other item, once
        kept = [h for h in short[p].tolist() if h >= 0]
        assert len(kept) == min(2, len(own) - 1) and items[p] not in kept and set(kept) <= own


def test_shuffle_within_users_keeps_each_run_in_place() -> None:
    users = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3])
    perm = shuffle_within_users(users, torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(len(users))) and torch.equal(users[perm], users)


def test_history_order_auto_follows_the_timestamps() -> None:
    train, _ = planted()  # no timestamps
    timed = train.with_events(train.events.with_columns(pl.int_range(pl.len()).cast(pl.Datetime("us"))
                                                        .alias("timestamp")))
    assert resolve_history_order(train, "auto") == "set" and resolve_history_order(timed, "auto") == "time"
    assert resolve_history_order(train, "time") == "time"


def _fitted(**settings: object) -> TwoTower:
    train, _ = planted(n_users=40, n_items=12)
    return TwoTower(TwoTowerConfig(**{**FAST, "epochs": 1, **settings})).fit(train)  # type: ignore[arg-type]


def _batch(model: TwoTower) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items = torch.tensor([0, 1, 2, 3, 4, 5, 0, 7])
    users = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    return items, users, model.histories_[users]


def test_mixed_negatives_carry_the_mixture_logq_and_never_the_positive() -> None:
    m, model = 64, _fitted(uniform_negatives=64, id_dropout=0.0)
    items, users, hist = _batch(model)
    freq = StreamingFrequency(12, batch_size=8, alpha=0.5, device=torch.device("cpu"))
    freq.update(torch.tensor([0, 0, 1, 3]))  # an earlier batch, so the rates differ by item
    logits, _ = batch_logits(model, items, users, hist, freq, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)  # replay the draws: id dropout mask, then the M uniform items
    torch.rand(items.shape, generator=gen)
    neg = torch.randint(0, 12, (m,), generator=gen)
    with torch.no_grad():
        net, tau = model.net_, model.config.temperature
        uv = net.users(users, hist, model.user_feats_)
        nv = net.items(neg, torch.ones(m), model.item_feats_)
        q = 1.0 / freq.gap  # expected count per batch, after this batch's update (Yi et al. 2019)
        expected = (uv @ nv.T) / tau - torch.log(q[neg] + m / 12).unsqueeze(0)  # Yang et al. 2020 mixture
    got = logits[:, len(items):].detach()
    positive = items.unsqueeze(1) == neg.unsqueeze(0)
    assert positive.any() and (~positive).any()
    assert torch.isneginf(got[positive]).all()
    torch.testing.assert_close(got[~positive], expected[~positive])
    in_batch = logits[:, : len(items)].detach().diagonal()
    own = torch.log(q[items] + m / 12)
    own_cos = (uv * net.items(items, torch.ones(8), model.item_feats_)).sum(1).detach()
    torch.testing.assert_close(in_batch, own_cos / tau - own)  # the in-batch kind: the same mixture term


def test_without_uniform_negatives_the_correction_is_yi_et_al() -> None:
    freq = StreamingFrequency(5, batch_size=2, alpha=0.5, device=torch.device("cpu"))
    freq.update(torch.tensor([0, 1]))
    ids = torch.arange(5)
    assert torch.equal(freq.log_q_mixed(ids, 0, 5), freq.log_q(ids))
    torch.testing.assert_close(freq.log_q_mixed(ids, 10, 5), torch.log(freq.log_q(ids).exp() + 2.0))


def test_user_l2_adds_lambda_times_the_mean_squared_user_embedding() -> None:
    model = _fitted()
    items, users, hist = _batch(model)

    def loss() -> float:
        freq = StreamingFrequency(12, batch_size=8, alpha=0.5, device=torch.device("cpu"))
        return batch_loss(model, items, users, hist, freq, torch.Generator().manual_seed(3)).item()

    plain = loss()
    model.config = model.config.model_copy(update={"user_l2": 0.5})
    assert model.net_.user_id is not None
    penalty = 0.5 * model.net_.user_id(users).pow(2).sum(1).mean().item()
    assert penalty > 0 and loss() == pytest.approx(plain + penalty, rel=1e-5)


def test_user_id_dropout_changes_the_user_vector_only_through_the_id() -> None:
    model = _fitted()
    net = model.net_
    users, hist = torch.arange(4), model.histories_[:4]
    with torch.no_grad():
        kept = net.users(users, hist, model.user_feats_, torch.ones(4))
        assert torch.equal(kept, net.users(users, hist, model.user_feats_))
        dropped = net.users(users, hist, model.user_feats_, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert not torch.allclose(dropped[0], kept[0]) and torch.equal(dropped[1], kept[1])


@pytest.mark.parametrize("settings", [
    {"use_user_id": False, "uniform_negatives": 32},
    {"user_id_dropout": 0.5, "user_l2": 0.1, "history_order": "set", "batch_size": 256},
])
def test_regularised_user_towers_still_learn_the_planted_structure(settings: dict[str, object]) -> None:
    train, test = planted()
    model = TwoTower(TwoTowerConfig(**{**FAST, **settings})).fit(train)  # type: ignore[arg-type]
    ev = Evaluator.from_datasets(train, test, ks=[10])
    ours, pop = ev.evaluate(model)["recall@10"], ev.evaluate(MostPopular().fit(train))["recall@10"]
    assert ours > pop + 0.1, (ours, pop)
    assert (model.net_.user_id is None) == (settings.get("use_user_id") is False)


@pytest.mark.parametrize("settings", [{"use_user_id": False, "user_l2": 0.1},
                                      {"use_user_id": False, "user_id_dropout": 0.2},
                                      {"history_order": "random"}, {"user_l2": -1.0}])
def test_bad_user_tower_settings_are_rejected(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TwoTowerConfig(**settings)  # type: ignore[arg-type]


def test_a_tower_without_user_ids_round_trips_through_its_tensors() -> None:
    model = _fitted(use_user_id=False, history_order="set")
    tensors, meta = model.state_tensors()
    assert not any(k.startswith("net.user_id") for k in tensors) and meta["history_order"] == "set"
    loaded = TwoTower(model.config)
    loaded.load_state_tensors(tensors, meta)
    loaded.train_ = model.train_  # load_source restores it from the artifact
    users = np.arange(10)
    torch.testing.assert_close(loaded.score(users), model.score(users))
    assert loaded.net_.user_id is None and loaded.history_order_ == "set"


@pytest.mark.parametrize("settings", [{"validation_ratio": 0.2, "eval_every": 1, "eval_k": 5, "uniform_negatives": 8},
                                      {"history_order": "set", "time_budget_s": 3600.0}])
def test_a_run_resumed_from_a_checkpoint_ends_as_the_uninterrupted_one(settings: dict[str, object]) -> None:
    train, _ = planted(n_users=60, n_items=30)
    config = TwoTowerConfig(**{**FAST, "epochs": 4, "patience": 10, **settings})  # type: ignore[arg-type]
    check_resume(lambda: TwoTower(config).fit(train), lambda m: m.net_.state_dict(), epoch=2)
