"""SASRec: learns a planted order, causal attention, online histories, candidate scoring, persistence."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from cycles import cycle_dataset

from rankstack.data.splits import make_split
from rankstack.errors import ConfigError
from rankstack.evaluation import early_stopping_train
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts, run_experiment
from rankstack.pipeline.components import build_source, source_class
from rankstack.retrieval.source import BudgetStop
from rankstack.retrieval.source_files import load_source, save_source
from rankstack.sequential import SASRec, SASRecConfig
from rankstack.sequential.net import SASRecNet
from rankstack.testing.rankers import check_ranker
from rankstack.testing.resume import check_resume

SMALL = {"max_len": 16, "hidden_dim": 32, "heads": 2, "dropout": 0.0, "lr": 5e-3, "epochs": 40, "batch_size": 64,
         "eval_every": 5, "patience": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted() -> tuple[SASRec, object, object]:
    data = cycle_dataset()
    fit, test = fit_and_eval_parts(make_split(data, "leave_one_out"), "test")
    torch.set_num_threads(1)
    return SASRec(SASRecConfig(**SMALL)).fit(fit), fit, test


def test_learns_the_planted_next_item(fitted: tuple[SASRec, object, object]) -> None:
    model, fit, test = fitted
    metrics = Evaluator.from_datasets(fit, test, ks=[1, 10]).evaluate(model)
    assert metrics["hr@1"] > 0.8  # popularity would be ~1/40
    assert model.history_[-1]["val_hr@10"] > 0.8
    assert 1 <= model.best_epoch_ <= len(model.history_)


def test_fresh_click_changes_scores_without_retraining(fitted: tuple[SASRec, object, object]) -> None:
    model, fit, _ = fitted
    history = model.histories_[0]
    last = str(fit.item_map.to_external(np.array([history[-1]]))[0])
    following = int(fit.item_map.to_internal([f"i{(int(last[1:]) + 1) % 40}"])[0])
    before = model.score_histories([history])[0]
    after = model.score_histories([np.append(history, following)])[0]
    assert not torch.allclose(before, after)
    assert int(torch.argmax(before)) == following  # the planted next item is the top score
    saved = list(model.histories_)
    try:
        model.update_histories([0], [following])
        assert torch.allclose(model.score(np.array([0]))[0], after)
    finally:
        model.histories_ = saved


def test_with_histories_reads_another_datasets_histories_with_the_same_weights(
        fitted: tuple[SASRec, object, object]) -> None:
    model, fit, test = fitted
    later = fit.with_events(pl.concat([fit.events, test.events]))  # type: ignore[attr-defined]
    moved = model.with_histories(later)  # type: ignore[arg-type]
    assert moved.net_ is model.net_ and moved.histories_ is not model.histories_
    user = int(test.events.get_column("user_id")[0])  # type: ignore[attr-defined]
    assert len(moved.histories_[user]) == len(model.histories_[user]) + 1
    assert torch.allclose(moved.score(np.array([user]))[0], model.score_histories([moved.histories_[user]])[0])
    held = int(moved.histories_[user][-1])
    assert held not in moved.retrieve(np.array([user]), 40).item_ids[0]  # now seen, so excluded
    with pytest.raises(ValueError, match="items"):
        model.with_histories(SimpleNamespace(n_items=model.n_items_ + 1))  # type: ignore[arg-type]


def test_continued_starts_from_the_fitted_weights_and_keeps_them_unless_beaten(
        fitted: tuple[SASRec, object, object]) -> None:
    model, fit, _ = fitted
    short = SASRec(SASRecConfig(**{**SMALL, "epochs": 1, "eval_every": 1})).fit(fit)  # type: ignore[arg-type]
    start = {k: v.clone() for k, v in short.net_.state_dict().items()}
    more = copy.copy(short)
    more.config = short.config.model_copy(update={"epochs": 6})
    went_on = more.continued(fit)  # type: ignore[arg-type]
    assert all(torch.equal(v, start[k]) for k, v in short.net_.state_dict().items())  # the original is untouched
    curve = went_on.fit_summary().curve  # type: ignore[union-attr]
    assert curve[0] == (0, pytest.approx(short.history_[-1]["val_ndcg@10"]))  # epoch 0: the starting weights
    assert went_on.best_epoch_ > 0 and max(v for _, v in curve) > curve[0][1]
    ruin = copy.copy(model)
    ruin.config = model.config.model_copy(update={"epochs": 2, "eval_every": 1, "lr": 5.0})
    kept = ruin.continued(fit)  # type: ignore[arg-type]
    assert kept.best_epoch_ == 0 and kept.fit_summary().best_epoch == 0  # type: ignore[union-attr]
    assert all(torch.equal(v, model.net_.state_dict()[k]) for k, v in kept.net_.state_dict().items())
    with pytest.raises(ValueError, match="items"):
        model.continued(SimpleNamespace(n_items=model.n_items_ + 1))  # type: ignore[arg-type]


def test_score_candidates_gathers_full_scores(fitted: tuple[SASRec, object, object]) -> None:
    model, _, _ = fitted
    hist = [model.histories_[u] for u in range(3)]
    cand = np.array([[0, 5, -1], [7, 2, 3], [-1, -1, 1]])
    full = model.score_histories(hist)
    got = model.score_candidates(hist, cand)
    for r in range(3):
        for c in range(3):
            if cand[r, c] < 0:
                assert torch.isneginf(got[r, c])
            else:
                assert got[r, c] == pytest.approx(float(full[r, cand[r, c]]), rel=1e-5, abs=1e-5)


def test_sasrec_as_a_candidate_ranker_passes_the_ranker_suite(fitted: tuple[SASRec, object, object]) -> None:
    model, _, _ = fitted
    users = np.array([0, 1, 2, 3])
    cands = np.array([[0, 5, -1, 9], [7, 2, 3, 1], [-1, -1, 1, 4], [6, 6, 8, 0]])
    check_ranker(lambda u, i: {"score": model.score_candidates([model.histories_[x] for x in u], i).numpy()},
                 users, cands)


def test_save_load_round_trip(fitted: tuple[SASRec, object, object], tmp_path: Path) -> None:
    model, fit, _ = fitted
    save_source(model, tmp_path / "sasrec", dataset=fit)
    loaded = load_source(tmp_path / "sasrec", source_class)
    users = np.arange(5)
    assert torch.allclose(model.score(users), loaded.score(users), atol=1e-5)
    assert [len(h) for h in loaded.histories_] == [len(h) for h in model.histories_]


def test_attention_is_causal_and_padding_invariant() -> None:
    torch.manual_seed(0)
    net = SASRecNet(20, SASRecConfig(max_len=8, hidden_dim=16, blocks=2, heads=2, dropout=0.0)).eval()
    seq = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = seq.clone()
    changed[0, -1] = 12
    h1, h2 = net(seq), net(changed)
    assert torch.allclose(h1[:, :-1], h2[:, :-1], atol=1e-6)  # earlier positions never see later items
    assert not torch.allclose(h1[:, -1], h2[:, -1])
    shorter = net(seq[:, 2:])  # same history with less left padding
    assert torch.allclose(shorter[:, -1], h1[:, -1], atol=1e-5)
    assert torch.all(h1[0, :2] == 0)


def test_sampled_negatives_train_too() -> None:
    data = cycle_dataset(n_users=80)
    cfg = SASRecConfig(**{**SMALL, "epochs": 3, "sampled_negatives": 10})
    model = SASRec(cfg).fit(data)
    assert np.isfinite(model.history_[-1]["loss"])


@pytest.mark.parametrize(("params", "match"), [
    ({"hidden_dim": 30, "heads": 4}, "divisible"),
    ({"dropout": 1.0}, "dropout"),
    ({"max_len": 0}, "max_len"),
    ({"crop": "middle"}, "crop"),
    ({"nonsense": 1}, "nonsense"),
])
def test_bad_configs_are_refused(params: dict[str, object], match: str) -> None:
    if match == "divisible":
        with pytest.raises(ValueError, match=match):
            SASRec(SASRecConfig(**{**SMALL, **params})).fit(cycle_dataset(n_users=10))
        return
    with pytest.raises(ConfigError, match=match):
        build_source("sasrec", params)


def test_unknown_item_ids_are_refused(fitted: tuple[SASRec, object, object]) -> None:
    model, _, _ = fitted
    with pytest.raises(ValueError, match="outside"):
        model.score_histories([np.array([0, model.n_items_])])
    with pytest.raises(ValueError, match="outside the catalog"):
        model.score_candidates([np.array([0])], np.array([[model.n_items_]]))


def test_time_budget_is_kept_inside_an_epoch() -> None:
    data = cycle_dataset(n_users=400)
    cfg = SASRecConfig(**{**SMALL, "epochs": 50, "batch_size": 4, "time_budget_s": 0.05, "patience": 50})
    model = SASRec(cfg).fit(data)
    assert model.history_ == []  # stopped within the first epoch (100 steps would take far longer)
    assert model.best_epoch_ == 0  # no epoch was completed: its partial updates are all there is
    assert model.budget_stop_ == BudgetStop(0.05, 0, 50, model.budget_stop_.wall_s, "kept")


TINY = {**SMALL, "batch_size": 8, "epochs": 5, "validation": False}  # 40 users: 5 batches an epoch


@pytest.mark.parametrize(("budget", "partial"), [(11.5, "discarded"), (10.0, None)])
def test_a_budget_stop_keeps_a_completed_epoch_and_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          budget: float, partial: str | None) -> None:
    data = cycle_dataset(n_users=40)
    reference = SASRec(SASRecConfig(**{**TINY, "epochs": 2})).fit(data)
    # A clock that ticks once per look (t0, before each batch but the first, at each epoch's end): epochs 1 and
    # 2 end at ticks 5 and 10; a budget of 11.5 cuts epoch 3 before its third batch, one of 10 ends at epoch 2.
    monkeypatch.setattr(early_stopping_train, "time", SimpleNamespace(perf_counter=itertools.count().__next__))
    model = SASRec(SASRecConfig(**{**TINY, "time_budget_s": budget})).fit(data)
    stop = model.budget_stop_
    assert stop is not None and (stop.budget_s, stop.epochs_done, stop.epochs, stop.partial_epoch) == (
        budget, 2, 5, partial)
    assert model.best_epoch_ == 2 and [row["epoch"] for row in model.history_] == [1, 2]
    assert [row["loss"] for row in model.history_] == [row["loss"] for row in reference.history_]
    users = np.arange(10)
    assert torch.equal(model.score(users), reference.score(users))  # the weights of epoch 2, not of the cut one
    save_source(model, tmp_path / "sasrec", dataset=data)
    meta = json.loads((tmp_path / "sasrec" / "source.json").read_text())["meta"]
    assert meta["best_epoch"] == 2 and meta["history"][-1]["loss"] == reference.history_[-1]["loss"]
    assert meta["budget_stop"]["message"].startswith(f"stopped by time_budget_s={budget:g} after 2 of 5 epochs")
    assert load_source(tmp_path / "sasrec", source_class).budget_stop_ == stop


def test_without_a_budget_stop_the_best_epoch_is_the_last_one() -> None:
    model = SASRec(SASRecConfig(**{**TINY, "epochs": 3})).fit(cycle_dataset(n_users=40))
    assert model.best_epoch_ == 3 and model.budget_stop_ is None



def test_an_evaluate_run_record_says_when_a_budget_ended_training() -> None:
    data = cycle_dataset(n_users=40)
    stopped = run_experiment(data, "leave_one_out", "sasrec", {**TINY, "time_budget_s": 1e-6})
    assert stopped["model"]["budget_stop"]["epochs_done"] == 0
    assert "stopped by time_budget_s" in stopped["model"]["budget_stop"]["message"]
    assert run_experiment(data, "leave_one_out", "sasrec", {**TINY, "epochs": 1})["model"]["budget_stop"] is None


@pytest.mark.parametrize("settings", [{"validation": True, "eval_every": 1, "sampled_negatives": 8},
                                      {"validation": False, "crop": "random"}])
def test_a_run_resumed_from_a_checkpoint_ends_as_the_uninterrupted_one(settings: dict[str, object]) -> None:
    fit, _ = fit_and_eval_parts(make_split(cycle_dataset(n_users=40), "leave_one_out"), "test")
    config = SASRecConfig(**{**SMALL, "epochs": 3, "hidden_dim": 16, "dropout": 0.2, **settings})  # type: ignore[arg-type]
    check_resume(lambda: SASRec(config).fit(fit), lambda m: m.net_.state_dict(), epoch=2)
